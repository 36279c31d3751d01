"""Who may do what: the pure policy rules, the service enforcing them, and no built-in actor from callers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import by, drive_to, leader, non_leader, open_incident, outsider, stage_tasks

from crisis.engine import policy
from crisis.errors import Conflict, Forbidden, GuardFailed, IllegalTrigger, InputError
from crisis.principal import Principal, for_person, roles_of
from crisis.roster import OnCall


def test_roles_come_from_the_roster(roster):
    assert {"leadership", "leadership_head", "group:leadership"} <= roles_of(roster, roster.leadership_head())
    duty = roles_of(roster, roster.roles["duty_officer"])
    assert "role:duty_officer" in duty and "group:monitoring" in duty and "leadership" not in duty
    assert roles_of(roster, "ghost") == frozenset()


def test_built_in_actors_are_refused_from_callers(svc, roster):
    iid = open_incident(svc)
    task = stage_tasks(svc, iid)[0]
    for name in ("system", "drill", "ghost"):
        with pytest.raises(Forbidden, match="unknown person"):
            svc.complete_task(task.id, principal=by(name))
        with pytest.raises(Forbidden, match="unknown person"):
            svc.fire(iid, "report", principal=by(name), override=True, reason="x")
    with pytest.raises(TypeError):
        svc.fire(iid, "report", actor="system")  # type: ignore[call-arg]
    with pytest.raises(InputError):
        Principal("president", auth="system")  # type: ignore[arg-type]
    assert svc.tasks(iid)[0].status == "open"


def test_forged_roles_are_ignored(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "reported")
    forged = Principal(non_leader(roster), roles=frozenset({"leadership", "leadership_head"}))
    with pytest.raises(Forbidden, match="rule assess"):
        svc.fire(iid, "assess", principal=forged, decision="activate")


def test_refusals_are_typed(svc, roster):
    iid = open_incident(svc)
    with pytest.raises(IllegalTrigger) as exc:
        svc.fire(iid, "close", principal=by(leader(roster)))
    assert isinstance(exc.value, Conflict)
    with pytest.raises(GuardFailed):
        svc.fire(iid, "report", principal=by(leader(roster)))
    task = stage_tasks(svc, iid)[0]
    svc.complete_task(task.id, principal=by(leader(roster)))
    with pytest.raises(Conflict, match="already done"):
        svc.complete_task(task.id, principal=by(leader(roster)))


def test_close_and_reopen_rules(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "follow_up")
    stranger = outsider(roster, "leadership", "monitoring")
    for t in stage_tasks(svc, iid):
        svc.complete_task(t.id, principal=by(leader(roster)))
    with pytest.raises(Forbidden, match="rule close"):
        svc.fire(iid, "close", principal=by(stranger))
    assert svc.fire(iid, "close", principal=by(non_leader(roster))).stage == "closed"
    with pytest.raises(Forbidden, match="rule reopen"):
        svc.fire(iid, "reopen", principal=by(stranger))


def test_allowed_actions_for_a_ui(roster):
    inc = policy.IncidentFacts(id=1, stage="reported", severity="II", allowed_triggers=("assess",),
                               open_required=("compile_report",))
    boss = for_person(roster, roster.leadership_head())
    duty = for_person(roster, roster.roles["duty_officer"])
    assert {"fire:assess", "override", "regrade"} <= policy.allowed(policy.incident_actions(boss, inc).values())
    duty_actions = policy.incident_actions(duty, inc)
    assert "fire:assess" not in policy.allowed(duty_actions.values())
    assert duty_actions["fire:assess"].rule == "assess" and not duty_actions["fire:assess"].conflict
    assert duty_actions["fire:close"].conflict  # not from this stage: "not now", not "not you"
    assert policy.refusals(duty_actions)["override"].endswith("(override)")

    task = policy.TaskFacts(id=5, group="response", assignee="medical_affairs", status="open",
                            paged=frozenset({"medical_affairs"}))
    assert policy.allowed(policy.task_actions(for_person(roster, "medical_affairs"), task).values()) == {
        "complete", "ack", "applicable"}
    info = for_person(roster, roster.roles["info_staff"])
    assert policy.allowed(policy.task_actions(info, task).values()) == set()
    oncall = for_person(roster, roster.on_call[0].person)
    assert "ack" in policy.allowed(policy.task_actions(oncall, task).values())

    st = policy.StatementFacts(id=2, status="in_review", major=True, drafted_by="commentator")
    assert policy.may_review(info, st).allowed and not policy.may_review(boss, st).allowed
    assert policy.may_review(boss, st).rule == "review.1"
    done = policy.StatementFacts(id=2, status="approved", major=False, drafted_by="commentator",
                                 reviewed_by=("info_staff", "info_head"), approved=2, levels=2)
    assert policy.may_release(info, done).allowed
    assert not policy.may_release(for_person(roster, "finance"), done).allowed


def test_enforce_maps_refusals_to_errors(roster):
    with pytest.raises(Forbidden) as exc:
        policy.enforce(policy.may_override(for_person(roster, "finance")))
    assert exc.value.rule == "override"
    with pytest.raises(Conflict):
        policy.enforce(policy.may_complete(for_person(roster, "finance"), policy.TaskFacts(
            id=1, group="logistics", assignee="finance", status="done")))
    policy.enforce(policy.may_override(for_person(roster, roster.leadership_head())))


def test_events_record_how_the_actor_authenticated(svc, roster):
    iid = open_incident(svc)
    svc.note(iid, "media_call", "记者来电", principal=Principal(non_leader(roster), auth="token"))
    svc.drill_inject(iid, "热搜第3", signals={"reposts": 900})
    auth = {e.kind: (e.actor, e.auth) for e in svc.timeline(iid)}
    assert auth["incident_opened"] == (non_leader(roster), "cli")
    assert auth["media_call"] == (non_leader(roster), "token")
    assert auth["inject"] == ("drill", None) and auth["signals_updated"] == ("drill", None)


def test_a_service_gives_each_person_the_rosters_roles_at_the_commands_time(svc, roster, clock):
    """The service reads standing roles once per person and roster; on call now is decided at each command's
    time."""
    assert "on_call" in svc._principal(Principal("oncall_backup"), clock.now()).roles  # read from the first roster
    window = {"person": "oncall_admin", "from": clock.now(), "until": clock.now() + timedelta(hours=1)}
    svc.roster = roster.model_copy(update={"on_call": [OnCall.model_validate(window)]})  # the backup is off the rota
    for when in (clock.now(), clock.now() + timedelta(hours=2)):
        for person in sorted(svc.roster.person_ids):
            assert svc._principal(Principal(person), when).roles == roles_of(svc.roster, person, when)
    assert "on_call" not in svc._principal(Principal("oncall_backup"), clock.now()).roles
