"""The stage machine: every legal transition, illegal triggers, the open-task guard, overrides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import PATH_TO, by, drive_to, finish_stage, leader, non_leader, open_incident, stage_tasks

from crisis.engine.fsm import FINAL, MACHINE, STAGES, TRANSITIONS, TRIGGERS
from crisis.errors import Forbidden, GuardFailed, IllegalTrigger, InputError

# (source, trigger, decision, destination): written out by hand from the process description.
LEGAL = [
    ("monitoring", "report", None, "reported"),
    ("reported", "assess", "activate", "assessing"),
    ("reported", "assess", "watch", "watch"),
    ("reported", "assess", "dismiss", "dismissed"),
    ("watch", "assess", "activate", "assessing"),
    ("watch", "assess", "watch", "watch"),
    ("watch", "assess", "dismiss", "dismissed"),
    ("watch", "reopen", None, "reported"),
    ("assessing", "respond", None, "responding"),
    ("responding", "media", None, "media_liaison"),
    ("media_liaison", "onsite", None, "onsite"),
    ("media_liaison", "skip_onsite", None, "follow_up"),
    ("onsite", "follow_up", None, "follow_up"),
    ("follow_up", "close", None, "closed"),
    ("follow_up", "reopen", None, "reported"),
    ("closed", "reopen", None, "reported"),
    ("dismissed", "reopen", None, "reported"),
]


def allowed_from(stage: str) -> list[str]:
    return [t for t in TRIGGERS if any(s == stage and tr == t for s, tr, _, _ in LEGAL)]


def snapshot(svc, iid: int):
    inc = svc.incident(iid)
    return (inc.model_dump(), [t.model_dump() for t in svc.tasks(iid)], len(svc.timeline(iid)),
            len(svc.outbox()), len(svc.escalations(iid)))


# ------------------------------------------------------------------------- the pure machine
def test_table_matches_machine_definition():
    """The hand-written table and fsm.TRANSITIONS describe the same machine."""
    defined = set()
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for src in sources:
            cond = t.get("conditions")
            decision = str(cond).removeprefix("decided_") if cond else None
            defined.add((src, t["trigger"], decision, t["dest"]))
    assert defined == set(LEGAL)
    for stage in STAGES:
        assert MACHINE.allowed(stage) == allowed_from(stage)


@pytest.mark.parametrize(("source", "trigger", "decision", "dest"), LEGAL)
def test_machine_target_is_pure(source, trigger, decision, dest):
    assert MACHINE.target(source, trigger, decision=decision) == dest


def test_machine_rejects_unknown_trigger_and_missing_decision():
    with pytest.raises(InputError, match="unknown trigger"):
        MACHINE.target("monitoring", "escalate")
    with pytest.raises(InputError, match="assess needs a decision"):
        MACHINE.target("reported", "assess")
    with pytest.raises(InputError, match="assess needs a decision"):
        MACHINE.target("reported", "assess", decision="maybe")
    with pytest.raises(InputError, match="unknown stage"):
        MACHINE.target("limbo", "report")


def test_machine_guard_blocks_and_override_passes():
    with pytest.raises(GuardFailed, match="compile_report"):
        MACHINE.target("monitoring", "report", open_required=["compile_report"])
    assert MACHINE.target("monitoring", "report", open_required=["compile_report"], override=True) == "reported"


# ------------------------------------------------------------------------- through the service
@pytest.mark.parametrize(("source", "trigger", "decision", "dest"), LEGAL,
                         ids=[f"{s}-{t}-{d or ''}-{e}" for s, t, d, e in LEGAL])
def test_every_legal_transition(svc, roster, clock, source, trigger, decision, dest):
    iid = open_incident(svc)
    drive_to(svc, iid, source)
    finish_stage(svc, iid)
    before = svc.incident(iid)
    clock.advance(timedelta(minutes=7))
    actor = leader(roster)
    inc = svc.fire(iid, trigger, principal=by(actor), decision=decision, note="n")
    assert inc.stage == dest
    assert svc.incident(iid).stage == dest
    changed = [e for e in svc.timeline(iid) if e.kind == "stage_changed"][-1]
    assert (changed.actor, changed.from_state, changed.to_state) == (actor, source, dest)
    assert changed.data["trigger"] == trigger
    assert changed.data["decision"] == decision
    assert changed.at == clock.now()
    tasks = svc.tasks(iid)
    if dest in FINAL:
        assert inc.closed_at == clock.now()
        assert not [t for t in tasks if t.status == "open"]
    if trigger == "reopen":
        assert inc.cycle == before.cycle + 1
        assert inc.closed_at is None and inc.decision is None
        new = [t for t in tasks if t.cycle == inc.cycle]
        assert {t.key for t in new} == {"assess_severity", "verify_facts"}
        assert all(t.stage == "reported" and t.status == "open" for t in new)
    elif dest != source:
        assert inc.stage_entered_at == clock.now()
        entered = {t.key for t in stage_tasks(svc, iid)}
        assert entered == {s.key for s in svc.playbooks.get("medical_dispute").tasks_for(dest)}
    if decision:
        assert inc.decision == decision


def test_full_main_path_with_onsite(svc):
    iid = open_incident(svc)
    drive_to(svc, iid, "closed")
    kinds = [(e.from_state, e.to_state) for e in svc.timeline(iid) if e.kind == "stage_changed"]
    assert kinds == [("monitoring", "reported"), ("reported", "assessing"), ("assessing", "responding"),
                     ("responding", "media_liaison"), ("media_liaison", "onsite"), ("onsite", "follow_up"),
                     ("follow_up", "closed")]


@pytest.mark.parametrize("stage", list(PATH_TO))
def test_illegal_triggers_raise_and_change_nothing(svc, roster, stage):
    iid = open_incident(svc)
    drive_to(svc, iid, stage)
    allowed = allowed_from(stage)
    illegal = [t for t in TRIGGERS if t not in allowed]
    assert illegal, stage
    before = snapshot(svc, iid)
    for trigger in illegal:
        decision = "activate" if trigger == "assess" else None
        with pytest.raises(IllegalTrigger) as err:
            svc.fire(iid, trigger, principal=by(leader(roster)), decision=decision)
        msg = str(err.value)
        assert f"'{trigger}'" in msg and f"'{stage}'" in msg
        if allowed:
            assert "allowed: " + ", ".join(allowed) in msg
        else:
            assert "none (final stage)" in msg
        assert err.value.allowed == allowed
        assert snapshot(svc, iid) == before


def test_unknown_trigger_is_input_error_and_changes_nothing(svc, roster):
    iid = open_incident(svc)
    before = snapshot(svc, iid)
    with pytest.raises(InputError, match="unknown trigger"):
        svc.fire(iid, "panic", principal=by(leader(roster)))
    assert snapshot(svc, iid) == before


# ------------------------------------------------------------------------- guard and override
def test_guard_blocks_leaving_with_required_open(svc, roster):
    iid = open_incident(svc)
    before = snapshot(svc, iid)
    with pytest.raises(GuardFailed) as err:
        svc.fire(iid, "report", principal=by(non_leader(roster)))
    assert "compile_report" in str(err.value)
    assert "preserve_evidence" not in str(err.value)  # optional tasks never block
    blocked = err.value  # the facts a page words in its own language: stage, tasks, the playbook naming them
    assert (blocked.stage, blocked.tasks, blocked.category) == ("monitoring", ["compile_report"], "medical_dispute")
    assert snapshot(svc, iid) == before
    # even leadership without an override is blocked
    with pytest.raises(GuardFailed):
        svc.fire(iid, "report", principal=by(leader(roster)))
    assert snapshot(svc, iid) == before


def test_optional_tasks_do_not_block_and_lapse(svc, roster):
    iid = open_incident(svc)
    finish_stage(svc, iid)
    svc.fire(iid, "report", principal=by(non_leader(roster)))
    by_key = {t.key: t for t in stage_tasks(svc, iid, "monitoring")}
    assert by_key["compile_report"].status == "done"
    assert by_key["preserve_evidence"].status == "cancelled"
    assert by_key["preserve_evidence"].next_escalation_at is None


def test_leadership_override_with_reason_waives_and_records(svc, roster, clock):
    iid = open_incident(svc)
    clock.advance(timedelta(minutes=3))
    boss = leader(roster)
    inc = svc.fire(iid, "report", principal=by(boss), override=True, reason="  家属已到院，先报告  ")
    assert inc.stage == "reported"
    overrides = [e for e in svc.timeline(iid) if e.kind == "override"]
    assert len(overrides) == 1
    ov = overrides[0]
    assert ov.actor == boss and ov.at == clock.now()
    assert (ov.from_state, ov.to_state) == ("monitoring", "reported")
    assert ov.data["reason"] == "家属已到院，先报告"
    assert ov.data["waived"] == ["compile_report"]
    tasks = {t.key: t for t in stage_tasks(svc, iid, "monitoring")}
    assert tasks["compile_report"].status == "waived"
    assert tasks["compile_report"].next_escalation_at is None
    assert tasks["preserve_evidence"].status == "cancelled"
    waived = [e for e in svc.timeline(iid) if e.kind == "task_waived"]
    assert [e.task_id for e in waived] == [tasks["compile_report"].id]


def test_override_by_non_leadership_refused(svc, roster):
    iid = open_incident(svc)
    before = snapshot(svc, iid)
    for person in (non_leader(roster), roster.groups["logistics"].head):
        assert not roster.is_leadership(person)
        with pytest.raises(Forbidden, match="leadership"):
            svc.fire(iid, "report", principal=by(person), override=True, reason="赶时间")
    assert snapshot(svc, iid) == before


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_override_without_reason_refused(svc, roster, reason):
    iid = open_incident(svc)
    before = snapshot(svc, iid)
    with pytest.raises(InputError, match="reason"):
        svc.fire(iid, "report", principal=by(leader(roster)), override=True, reason=reason)
    assert snapshot(svc, iid) == before


def test_unknown_actor_refused(svc):
    iid = open_incident(svc)
    before = snapshot(svc, iid)
    with pytest.raises(Exception, match="unknown person"):
        svc.fire(iid, "report", principal=by("nobody_here"), override=True, reason="x")
    assert snapshot(svc, iid) == before


def test_reopen_is_never_blocked_by_open_tasks(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "follow_up")
    assert any(t.required and t.status == "open" for t in stage_tasks(svc, iid))
    inc = svc.fire(iid, "reopen", principal=by(non_leader(roster)))
    assert inc.stage == "reported" and inc.cycle == 2
    assert {t.key for t in stage_tasks(svc, iid)} == {"assess_severity", "verify_facts"}
    assert not [e for e in svc.timeline(iid) if e.kind == "override"]


def test_reopen_cancels_open_tasks_of_interrupted_stage(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "follow_up")
    svc.fire(iid, "reopen", principal=by(non_leader(roster)))
    old = [t for t in svc.tasks(iid) if t.stage == "follow_up"]
    assert {t.status for t in old} == {"cancelled"}
    assert all(t.note == "incident reopened on a flare-up" for t in old)
    assert all(t.next_escalation_at is None for t in old)


def test_reopen_from_watch_cancels_watch_task(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "watch")
    svc.fire(iid, "reopen", principal=by(leader(roster)))
    (watch,) = [t for t in svc.tasks(iid) if t.stage == "watch"]
    assert watch.status == "cancelled"


# ------------------------------------------------------------------------- assessment
def test_assess_only_by_leadership(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "reported")
    finish_stage(svc, iid)
    before = snapshot(svc, iid)
    with pytest.raises(Forbidden, match="leadership"):
        svc.fire(iid, "assess", principal=by(non_leader(roster)), decision="activate")
    assert snapshot(svc, iid) == before
    deputy = roster.groups["leadership"].deputies[0]
    assert svc.fire(iid, "assess", principal=by(deputy), decision="activate").stage == "assessing"


def test_assess_without_decision_refused(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "reported")
    finish_stage(svc, iid)
    before = snapshot(svc, iid)
    with pytest.raises(InputError, match="decision"):
        svc.fire(iid, "assess", principal=by(leader(roster)))
    assert snapshot(svc, iid) == before


def test_severity_at_assess_grades_new_stage_deadlines(svc, roster, clock):
    iid = open_incident(svc, severity="III")
    opened = svc.incident(iid).opened_at
    drive_to(svc, iid, "reported")
    finish_stage(svc, iid)
    clock.advance(timedelta(minutes=20))
    inc = svc.fire(iid, "assess", principal=by(leader(roster)), decision="activate", severity="I")
    assert inc.severity == "I"
    changed = [e for e in svc.timeline(iid) if e.kind == "severity_changed"]
    assert len(changed) == 1 and changed[0].data == {"from": "III", "to": "I"}
    due = {t.key: t.due_at for t in stage_tasks(svc, iid)}
    now = clock.now()
    assert due["issue_instructions"] == now + timedelta(minutes=30)  # I, not III's 2h
    assert due["report_health_authority"] == opened + timedelta(hours=2)  # anchored at opening, I
    assert due["seal_records"] == opened + timedelta(hours=6)
    assert due["news_line"] == now + timedelta(hours=2)
    plan = {t.key: t.escalation_plan for t in stage_tasks(svc, iid)}
    # the president is assignee, group head and leadership head: next comes on-call, one grade-I wait (10m) later
    assert plan["issue_instructions"][1] == ["on_call", 600]


def test_severity_at_assess_watch_regrades_running_tasks(svc, roster, clock):
    iid = open_incident(svc, severity="IV")
    drive_to(svc, iid, "watch")
    entered = svc.incident(iid).stage_entered_at
    (watch,) = stage_tasks(svc, iid)
    assert watch.due_at == entered + timedelta(hours=24)
    clock.advance(timedelta(hours=1))
    inc = svc.fire(iid, "assess", principal=by(leader(roster)), decision="watch", severity="I")
    assert inc.stage == "watch"
    (again,) = stage_tasks(svc, iid)
    assert again.id == watch.id  # kept running, not re-created
    assert again.due_at == entered + timedelta(hours=2)
    assert again.next_escalation_at == again.due_at
    regraded = [e for e in svc.timeline(iid) if e.kind == "task_regraded"]
    assert [e.task_id for e in regraded] == [watch.id]
    assert regraded[0].data["new_due"] == again.due_at.isoformat()
