"""`crisis regrade`: leadership changes the grade at any time with a reason; open deadlines follow; the timeline
shows from → to (issue 10)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import START, by, drive_to, leader, non_leader, open_incident
from test_cli import crisis  # noqa: F401  (the CLI fixture)

from crisis.errors import CrisisError, Forbidden, InputError

M = timedelta(minutes=1)
H = timedelta(hours=1)


def test_regrade_recomputes_open_deadlines_and_records_from_to(svc, roster, clock):
    iid = open_incident(svc, severity="III")
    drive_to(svc, iid, "assessing")
    entered = clock.now()
    clock.advance(10 * M)
    inc = svc.regrade(iid, severity="I", reason="央媒转载，热度陡升", principal=by(leader(roster)))
    assert inc.severity == "I"
    tasks = {t.key: t for t in svc.tasks(iid) if t.stage == "assessing"}
    assert tasks["issue_instructions"].due_at == entered + 30 * M           # III 2h → I 30 min
    assert tasks["report_health_authority"].due_at == START + 2 * H        # anchored at the opening: I 2h
    assert tasks["seal_records"].due_at == START + 6 * H                   # same for every grade: unchanged
    ev = [e for e in svc.timeline(iid) if e.kind == "severity_changed"][-1]
    assert (ev.data["from"], ev.data["to"], ev.data["reason"], ev.actor) == ("III", "I", "央媒转载，热度陡升",
                                                                             "president")
    # every open task changed: a deadline, or the waits of its chain (15 min for II/III → 10 min for I)
    regraded = {e.data["key"] for e in svc.timeline(iid) if e.kind == "task_regraded"}
    assert regraded == {"issue_instructions", "report_health_authority", "seal_records", "news_line"}
    assert tasks["seal_records"].escalation_plan[:2] == [["assignee", 0], ["leadership_head", 600]]


def test_regrade_replans_only_its_own_incidents_tasks_soonest_deadline_first(svc, roster, clock):
    other = open_incident(svc, severity="III")
    drive_to(svc, other, "assessing")  # open, not yet escalated work of another incident: left alone
    before = {t.id: (t.due_at, t.escalation_plan) for t in svc.tasks(other)}
    iid = open_incident(svc, severity="III")
    drive_to(svc, iid, "assessing")
    svc.regrade(iid, severity="I", reason="热度陡升", principal=by(leader(roster)))
    assert {t.id: (t.due_at, t.escalation_plan) for t in svc.tasks(other)} == before
    events = [e for e in svc.timeline(iid) if e.kind == "task_regraded"]
    assert {e.incident_id for e in events} == {iid} and len(events) == 4
    old_due = [(e.data["old_due"] is not None, e.data["old_due"] or "", e.task_id) for e in events]
    assert old_due == sorted(old_due)  # the open-task index's order: no deadline first, then due time, then id


def test_regrade_is_leadership_only_needs_a_reason_and_a_change(svc, roster):
    iid = open_incident(svc, severity="II")
    with pytest.raises(Forbidden):
        svc.regrade(iid, severity="I", reason="x", principal=by(non_leader(roster)))
    with pytest.raises(InputError, match="reason"):
        svc.regrade(iid, severity="I", reason="  ", principal=by(leader(roster)))
    with pytest.raises(InputError, match="already grade II"):
        svc.regrade(iid, severity="II", reason="x", principal=by(leader(roster)))
    with pytest.raises(InputError):
        svc.regrade(iid, severity="V", reason="x", principal=by(leader(roster)))
    drive_to(svc, iid, "closed")
    with pytest.raises(CrisisError, match="closed"):
        svc.regrade(iid, severity="I", reason="x", principal=by(leader(roster)))
    assert [e for e in svc.timeline(iid) if e.kind == "severity_changed"] == []


def test_regrade_cli(crisis):  # noqa: F811
    inc = crisis.json("open", "--title", "网传", "--category", "medical_dispute")["incident"]
    out = crisis.json("regrade", str(inc["id"]), "--severity", "I", "--reason", "多家媒体跟进", "--by", "president")
    assert (out["from"], out["to"], out["incident"]["severity"]) == ("II", "I", "I")
    err = crisis.json("regrade", str(inc["id"]), "--severity", "I", "--reason", "x", "--by", "duty_officer", code=2)
    assert err["error"]["code"] == "forbidden" and err["error"]["rule"]
    text = crisis("regrade", str(inc["id"]), "--severity", "III", "--reason", "热度回落", "--by", "president").stdout
    assert "grade I → III" in text
