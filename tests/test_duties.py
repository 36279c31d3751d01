"""Duties that must not vanish (issue 10): a task marked applicable behaves as required; open work carries over
(`carry: true`) or holds the stage; an override names what it waives; a carried task can be completed late."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import ROSTER_PATH, START, by, drive_to, finish_stage, leader, non_leader, open_incident
from test_cli import crisis  # noqa: F401  (the CLI fixture)

from crisis.clock import VirtualClock
from crisis.errors import Conflict, Forbidden, GuardFailed, InputError
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService

M = timedelta(minutes=1)
H = timedelta(hours=1)

CARRY = """
category: carry_test
name: {zh: 延续测试, en: Carry test}
default_severity: II
escalation:
  chain: [assignee, group_head, leadership_head, on_call]
  wait: 10m
  repeat: 0
stages:
  monitoring:
    tasks:
      - key: compile_report
        group: monitoring
        title: {zh: 报告, en: Report}
        due: 30m
      - key: call_police
        group: logistics
        title: {zh: 立即报警, en: Call the police}
        carry: true
        due: 5m
      - key: remedy_leak
        group: response
        title: {zh: 补救并告知本人, en: Remedy and notify the person}
        required: false
        carry: true
        due: 1h
      - key: screenshot
        group: monitoring
        title: {zh: 截图, en: Screenshot}
        required: false
        due: 1h
  reported:
    tasks:
      - key: assess_severity
        group: leadership
        title: {zh: 研判, en: Assess}
        due: 1h
"""


@pytest.fixture()
def carry_svc(tmp_path, engine):
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "carry_test.yaml").write_text(CARRY, encoding="utf-8")
    return CrisisService(engine, load_playbooks(tmp_path / "pb"), load_roster(ROSTER_PATH), VirtualClock(START))


def test_applicable_optional_task_holds_the_stage_until_done(svc, roster):
    iid = open_incident(svc, severity="II")
    evidence = svc.find_task(iid, "preserve_evidence")
    assert not evidence.required
    t = svc.mark_applicable(evidence.id, reason="原帖可能被删除，需固定证据", principal=by("publicity_head"))
    assert t.required and t.status == "open"
    svc.complete_task(svc.find_task(iid, "compile_report").id, principal=by(leader(roster)))
    with pytest.raises(GuardFailed, match="preserve_evidence"):
        svc.fire(iid, "report", principal=by(non_leader(roster)))
    svc.complete_task(evidence.id, principal=by(leader(roster)))
    assert svc.fire(iid, "report", principal=by(non_leader(roster))).stage == "reported"
    ev = next(e for e in svc.timeline(iid) if e.kind == "task_applicable")
    assert (ev.task_id, ev.actor, ev.data["reason"]) == (evidence.id, "publicity_head", "原帖可能被删除，需固定证据")


def test_applicable_conditional_task_gets_its_chain(svc, roster, clock):
    """call_police (onsite, `escalate: false`, due 10 min) marked applicable 30 min in: the chain starts at
    level 1 at once and keeps the waits (15 min for grade II)."""
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "onsite")
    police = svc.find_task(iid, "call_police")
    assert police.escalation_plan == [] and police.next_escalation_at is None
    clock.advance(30 * M)
    t = svc.mark_applicable(police.id, reason="家属殴打医生", principal=by(leader(roster)))
    assert t.next_escalation_at == clock.now()
    assert [(e.level, e.recipient) for e in svc.tick() if e.task_id == police.id] == [(1, "admin_director")]
    clock.advance(15 * M)
    assert [(e.level, e.recipient) for e in svc.tick() if e.task_id == police.id] == [(2, "president")]


def test_applicable_refusals(svc, roster):
    iid = open_incident(svc, severity="II")
    compile_ = svc.find_task(iid, "compile_report")
    evidence = svc.find_task(iid, "preserve_evidence")
    with pytest.raises(InputError, match="already required"):
        svc.mark_applicable(compile_.id, reason="x", principal=by(leader(roster)))
    with pytest.raises(InputError, match="why"):
        svc.mark_applicable(evidence.id, reason=" ", principal=by(leader(roster)))
    with pytest.raises(Forbidden):  # the group's head or leadership decides, not any member
        svc.mark_applicable(evidence.id, reason="x", principal=by(non_leader(roster)))
    svc.complete_task(compile_.id, principal=by(leader(roster)))
    svc.fire(iid, "report", principal=by(non_leader(roster)))
    with pytest.raises(Conflict, match="cancelled"):
        svc.mark_applicable(evidence.id, reason="x", principal=by(leader(roster)))


def test_stage_change_lists_what_lapses(svc, roster):
    iid = open_incident(svc, severity="II")
    finish_stage(svc, iid)
    svc.fire(iid, "report", principal=by(non_leader(roster)))
    ev = [e for e in svc.timeline(iid) if e.kind == "stage_changed"][-1]
    assert (ev.data["lapsed"], ev.data["carried"], ev.data["waived"]) == (["preserve_evidence"], [], [])
    assert svc.find_task(iid, "preserve_evidence").status == "cancelled"


def test_carried_tasks_stay_open_and_can_be_completed_late(carry_svc):
    svc, roster, clock = carry_svc, carry_svc.roster, carry_svc.clock
    iid = open_incident(svc, category="carry_test")
    svc.complete_task(svc.find_task(iid, "compile_report").id, principal=by(leader(roster)))
    clock.advance(20 * M)
    svc.fire(iid, "report", principal=by(non_leader(roster)))  # call_police (required) carries instead of blocking
    ev = [e for e in svc.timeline(iid) if e.kind == "stage_changed"][-1]
    assert (ev.data["carried"], ev.data["lapsed"], ev.data["waived"]) == (["call_police", "remedy_leak"],
                                                                          ["screenshot"], [])
    carried = [e.data for e in svc.timeline(iid) if e.kind == "task_carried"]
    assert [(d["key"], d["from_stage"], d["to_stage"]) for d in carried] == [
        ("call_police", "monitoring", "reported"), ("remedy_leak", "monitoring", "reported")]
    police = svc.find_task(iid, "call_police")
    assert police.status == "open" and police.stage == "monitoring"
    # its chain keeps running in the next stage: level 1 at +5m (fired by now), level 2 at +15m
    assert [(e.level, e.recipient) for e in svc.tick()] == [(1, "admin_director"), (2, "president")]
    done = svc.complete_task(police.id, principal=by("admin_director"), note="已报警，派出所出警")
    assert done.status == "done" and done.done_at == START + 20 * M
    late = next(e for e in svc.timeline(iid) if e.kind == "task_done" and e.task_id == police.id)
    assert late.data["late_seconds"] == 15 * 60


def test_carried_required_task_holds_a_final_exit(carry_svc):
    svc, roster = carry_svc, carry_svc.roster
    iid = open_incident(svc, category="carry_test")
    svc.complete_task(svc.find_task(iid, "compile_report").id, principal=by(leader(roster)))
    svc.fire(iid, "report", principal=by(non_leader(roster)))
    svc.complete_task(svc.find_task(iid, "assess_severity").id, principal=by(leader(roster)))
    with pytest.raises(GuardFailed, match="call_police"):
        svc.fire(iid, "assess", decision="dismiss", principal=by(leader(roster)))
    inc = svc.fire(iid, "assess", decision="dismiss", principal=by(leader(roster)), override=True, reason="误报")
    assert inc.stage == "dismissed"
    assert svc.find_task(iid, "call_police").status == "waived"
    over = next(e for e in svc.timeline(iid) if e.kind == "override")
    assert over.data["waived"] == ["call_police"]


def test_override_confirmation_lists_what_is_waived(crisis):  # noqa: F811
    iid = str(crisis.json("open", "--title", "网传", "--category", "medical_dispute")["incident"]["id"])
    out = crisis.json("fire", iid, "report", "--override", "--reason", "领导指示先行上报", "--by", "president")
    assert [t["key"] for t in out["waived"]] == ["compile_report"]
    assert [t["key"] for t in out["lapsed"]] == ["preserve_evidence"] and out["carried"] == []
    text = crisis("fire", iid, "assess", "--decision", "activate", "--override", "--reason", "紧急",
                  "--by", "president").stdout
    assert "waived by override" in text and "研判事件等级与范围" in text and "向当事科室核实诊疗经过" in text


def test_task_applicable_cli(crisis):  # noqa: F811
    opened = crisis.json("open", "--title", "网传", "--category", "medical_dispute")
    evidence = next(t for t in opened["tasks"] if t["key"] == "preserve_evidence")
    t = crisis.json("task", "applicable", str(evidence["id"]), "--reason", "原帖已删", "--by", "publicity_head")
    assert t["required"] is True
    err = crisis.json("task", "applicable", str(evidence["id"]), "--reason", "x", "--by", "publicity_head", code=2)
    assert err["error"]["code"] == "invalid" and "already required" in err["error"]["message"]
    err = crisis.json("task", "applicable", str(evidence["id"]), "--reason", "x", code=2)  # the duty officer
    assert err["error"]["code"] == "forbidden"
