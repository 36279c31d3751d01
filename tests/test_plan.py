"""Deadlines and escalation plans: per severity from the playbook, anchored at stage entry or opening."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import START, by, drive_to, leader, open_incident, stage_tasks

from crisis.engine.plan import chase_plan, due_at, due_steps, plan_stage, step_time
from crisis.playbook import EscalationSpec, Playbook, PlaybookSet
from crisis.service import CrisisService
from crisis.severity import Severity

M = timedelta(minutes=1)
H = timedelta(hours=1)
SEVS = [Severity.I, Severity.II, Severity.III, Severity.IV]


def spec(playbooks, stage: str, key: str):
    return next(t for t in playbooks.get("medical_dispute").tasks_for(stage) if t.key == key)


# ------------------------------------------------------------------------- deadlines
@pytest.mark.parametrize(("sev", "expected"), list(zip(SEVS, [15 * M, 30 * M, H, 2 * H], strict=True)))
def test_stage_anchor_due_is_entry_plus_grade_due(playbooks, sev, expected):
    entered = START + 3 * H
    got = due_at(spec(playbooks, "monitoring", "compile_report"), sev, stage_entered_at=entered,
                 incident_opened_at=START)
    assert got == entered + expected


@pytest.mark.parametrize(("sev", "expected"), list(zip(SEVS, [2 * H, 12 * H, 12 * H, 24 * H], strict=True)))
def test_incident_anchor_due_is_opening_plus_grade_due(playbooks, sev, expected):
    got = due_at(spec(playbooks, "assessing", "report_health_authority"), sev, stage_entered_at=START + 5 * H,
                 incident_opened_at=START)
    assert got == START + expected


def test_single_duration_applies_to_every_grade(playbooks):
    s = spec(playbooks, "assessing", "seal_records")
    assert s.anchor == "incident"
    for sev in SEVS:
        assert due_at(s, sev, stage_entered_at=START + 4 * H, incident_opened_at=START) == START + 6 * H
    news = spec(playbooks, "assessing", "news_line")
    for sev in SEVS:
        assert due_at(news, sev, stage_entered_at=START + 4 * H, incident_opened_at=START) == START + 6 * H


def test_day_durations(playbooks):
    s = spec(playbooks, "follow_up", "publish_outcome")
    got = [due_at(s, sev, stage_entered_at=START, incident_opened_at=START) for sev in SEVS]
    assert got == [START + timedelta(days=d) for d in (3, 5, 7, 7)]


def test_plan_stage_assignees_and_plans(playbooks, roster):
    pb = playbooks.get("medical_dispute")
    planned = {p.key: p for p in plan_stage(pb, "onsite", Severity.II, stage_entered_at=START + H,
                                             incident_opened_at=START, roster=roster)}
    assert list(planned) == ["dispatch_team", "site_security", "family_talks", "call_police"]
    assert planned["dispatch_team"].assignee == roster.group_head("response")
    assert planned["site_security"].assignee == roster.group_head("logistics")
    assert planned["dispatch_team"].due_at == START + H + 30 * M
    assert planned["call_police"].required is False
    assert planned["call_police"].escalation_plan == []  # escalate: false
    assert planned["dispatch_team"].escalation_plan[0] == ("assignee", 0)

    monitoring = {p.key: p for p in plan_stage(pb, "monitoring", Severity.I, stage_entered_at=START,
                                                incident_opened_at=START, roster=roster)}
    assert monitoring["preserve_evidence"].assignee == roster.roles["info_staff"]  # role wins over head
    assert monitoring["compile_report"].assignee == roster.group_head("monitoring")
    responding = {p.key: p for p in plan_stage(pb, "responding", Severity.I, stage_entered_at=START,
                                                incident_opened_at=START, roster=roster)}
    assert responding["legal_review"].assignee == roster.roles["legal_counsel"]
    assert responding["release_statement"].assignee == roster.roles["spokesperson"]
    assert responding["release_statement"].anchor == "incident"


def test_final_stages_plan_nothing(playbooks, roster):
    pb = playbooks.get("medical_dispute")
    for stage in ("closed", "dismissed"):
        assert plan_stage(pb, stage, Severity.I, stage_entered_at=START, incident_opened_at=START,
                          roster=roster) == []


# ------------------------------------------------------------------------- escalation plans
@pytest.mark.parametrize(("sev", "wait"), list(zip(SEVS, [600, 900, 1800, 3600], strict=True)))
def test_escalation_plan_per_grade(playbooks, roster, sev, wait):
    plan = chase_plan(playbooks.get("medical_dispute").escalation_for("monitoring"), sev, group="monitoring",
                      assignee="info_staff", roster=roster)
    assert plan == [("assignee", 0), ("group_head", wait), ("leadership_head", 2 * wait), ("on_call", 3 * wait),
                    ("on_call", 4 * wait), ("on_call", 5 * wait)]  # repeat: 2 more reminders to on-call


def test_stage_level_escalation_overrides_playbook_default(roster):
    pb = Playbook.model_validate({
        "category": "x", "name": {"zh": "x", "en": "x"},
        "escalation": {"chain": ["assignee", "on_call"], "wait": "1h", "repeat": 0},
        "stages": {
            "monitoring": {"tasks": [{"key": "a", "group": "monitoring", "title": {"zh": "a", "en": "a"},
                                      "due": "10m"}]},
            "reported": {"escalation": {"chain": ["group_head", "person:legal"], "wait": {"I": "1m", "II": "2m",
                                                                                         "III": "3m", "IV": "4m"},
                                        "repeat": 1},
                         "tasks": []},
        },
    })
    def plan(stage: str, sev: Severity) -> list[tuple[str, int]]:
        return chase_plan(pb.escalation_for(stage), sev, group="monitoring", assignee="info_staff", roster=roster)

    assert plan("monitoring", Severity.I) == [("assignee", 0), ("on_call", 3600)]
    assert plan("reported", Severity.III) == [("group_head", 0), ("person:legal", 180), ("person:legal", 360)]


PLAN = [("assignee", 0), ("group_head", 900), ("leadership_head", 1800), ("on_call", 2700)]


def test_step_time():
    due = START + H
    assert [step_time(due, PLAN, i) for i in range(5)] == [due, due + 15 * M, due + 30 * M, due + 45 * M, None]


@pytest.mark.parametrize(("level", "offset", "expected"), [
    (0, -timedelta(seconds=1), []),
    (0, timedelta(0), [0]),
    (0, 15 * M - timedelta(seconds=1), [0]),
    (0, 15 * M, [0, 1]),
    (1, 15 * M, [1]),
    (2, 15 * M, []),
    (0, 10 * H, [0, 1, 2, 3]),  # long downtime: every missed step, once
    (3, 10 * H, [3]),
    (4, 10 * H, []),  # past the last step
])
def test_due_steps(level, offset, expected):
    due = START + H
    assert due_steps(due, PLAN, level, due + offset) == expected


# ------------------------------------------------------------------------- through the service
@pytest.mark.parametrize(("sev", "report", "evidence"), [
    ("I", 15 * M, 30 * M), ("II", 30 * M, 30 * M), ("III", H, H), ("IV", 2 * H, 2 * H)])
def test_opened_incident_deadlines_per_grade(svc, sev, report, evidence):
    iid = open_incident(svc, severity=sev)
    due = {t.key: t.due_at for t in stage_tasks(svc, iid)}
    assert due == {"compile_report": START + report, "preserve_evidence": START + evidence}


def test_stage_vs_incident_anchor_in_service(svc, clock, roster):
    iid = open_incident(svc, severity="II")
    clock.advance(3 * H)
    drive_to(svc, iid, "assessing")
    entered = svc.incident(iid).stage_entered_at
    assert entered == START + 3 * H
    tasks = {t.key: t for t in stage_tasks(svc, iid)}
    assert tasks["issue_instructions"].due_at == entered + H
    assert tasks["issue_instructions"].anchor == "stage"
    assert tasks["news_line"].due_at == entered + 2 * H
    assert tasks["seal_records"].due_at == START + 6 * H
    assert tasks["seal_records"].anchor == "incident"
    assert tasks["report_health_authority"].due_at == START + 12 * H
    assert tasks["issue_instructions"].next_escalation_at == tasks["issue_instructions"].due_at
    # assignee, group head and leadership head are all the president: one reminder, then on-call (+2 repeats)
    assert tasks["issue_instructions"].escalation_plan == [["assignee", 0], ["on_call", 900], ["on_call", 1800],
                                                           ["on_call", 2700]]
    assert leader(roster) == tasks["issue_instructions"].assignee  # leadership task goes to the head


def test_regrade_skips_tasks_whose_deadline_and_plan_do_not_change(engine, roster, clock):
    pb = Playbook.model_validate({
        "category": "flat", "name": {"zh": "平", "en": "Flat"}, "default_severity": "III",
        "escalation": {"chain": ["assignee", "group_head"], "wait": "30m", "repeat": 0},
        "stages": {"watch": {"tasks": [{"key": "watch_it", "group": "monitoring",
                                        "title": {"zh": "看", "en": "Watch"}, "due": "1h",
                                        "required": False}]}},
    })
    svc = CrisisService(engine, PlaybookSet({"flat": pb}), roster, clock)
    boss = leader(roster)
    inc = svc.open_incident(title="t", category="flat", principal=by(boss))
    assert inc.id is not None
    svc.fire(inc.id, "report", principal=by(boss))
    svc.fire(inc.id, "assess", principal=by(boss), decision="watch")
    (task,) = svc.tasks(inc.id)
    clock.advance(10 * M)
    svc.fire(inc.id, "assess", principal=by(boss), decision="watch", severity="I")  # stays in watch, task keeps running
    (after,) = svc.tasks(inc.id)
    assert (after.due_at, after.escalation_plan) == (task.due_at, task.escalation_plan)  # nothing to regrade
    assert [e for e in svc.timeline(inc.id) if e.kind == "task_regraded"] == []


def test_chase_plan_skips_a_step_that_would_page_the_same_person_again(roster):
    spec = EscalationSpec.model_validate({"chain": ["assignee", "group_head", "role:spokesperson",
                                                    "leadership_head", "on_call", "on_call"],
                                          "wait": "10m", "repeat": 1})
    # the spokesperson is the publicity head, who also heads monitoring: two steps collapse into the first
    assert roster.roles["spokesperson"] == roster.group_head("monitoring") == "publicity_head"
    plan = chase_plan(spec, Severity.II, group="monitoring", assignee="info_staff", roster=roster)
    assert plan == [("assignee", 0), ("group_head", 600), ("leadership_head", 1200), ("on_call", 1800),
                    ("on_call", 2400), ("on_call", 3000)]  # on_call is time-dependent: never collapsed
    # a deliberate repeat of a fixed person is kept
    spec = EscalationSpec.model_validate({"chain": ["assignee"], "wait": "5m", "repeat": 2})
    assert chase_plan(spec, Severity.I, group="response", assignee="legal", roster=roster) == [
        ("assignee", 0), ("assignee", 300), ("assignee", 600)]
