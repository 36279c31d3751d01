"""Regression tests (issue 10): a reopened incident restarts its regulatory clocks from the reopen, and a task
overdue when it is created starts its chain at the first level and keeps the waits (no burst of every level)."""

from __future__ import annotations

from datetime import timedelta

from helpers import START, by, drive_to, go, leader, non_leader, open_incident

M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


def test_reopen_days_later_restarts_opening_anchored_clocks(svc, roster, clock):
    """Watched, then a flare-up three days later: `seal_records` (6 h from the opening) and
    `report_health_authority` (12 h for grade II) run from the reopen, not from the first opening."""
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "watch")
    clock.advance(3 * D)
    reopened_at = clock.now()
    inc = svc.fire(iid, "reopen", principal=by(non_leader(roster)), note="热度反弹")
    assert inc.cycle == 2 and inc.cycle_anchor == reopened_at and inc.opened_at == START
    clock.advance(20 * M)
    go(svc, iid, "assess", decision="activate", principal=by(leader(roster)))
    tasks = {t.key: t for t in svc.tasks(iid) if t.cycle == 2 and t.stage == "assessing"}
    assert tasks["seal_records"].due_at == reopened_at + 6 * H
    assert tasks["report_health_authority"].due_at == reopened_at + 12 * H
    assert svc.tick() == []  # nothing is overdue the moment the new cycle's assessment starts
    assert svc.escalations(iid) == []


def test_task_overdue_at_creation_starts_at_level_one_and_keeps_the_waits(svc, roster, clock):
    """Assessment entered 7 h after the opening: `seal_records` (6 h from the opening) is already 1 h late.
    Its chain starts at level 1 at creation; level 2 waits one full wait (15 min for grade II)."""
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "reported")
    clock.advance(7 * H)
    go(svc, iid, "assess", decision="activate", principal=by(leader(roster)))
    entered = clock.now()
    seal = svc.find_task(iid, "seal_records")
    assert seal.due_at == START + 6 * H and seal.next_escalation_at == entered
    first = [e for e in svc.tick() if e.task_id == seal.id]
    assert [(e.level, e.recipient, e.scheduled_at) for e in first] == [(1, "medical_affairs", entered)]
    clock.advance(15 * M - timedelta(seconds=1))
    assert [e for e in svc.tick() if e.task_id == seal.id] == []
    clock.advance(timedelta(seconds=1))
    second = [e for e in svc.tick() if e.task_id == seal.id]
    # medical_affairs heads the response group, so level 2 goes on to leadership, one wait later
    assert [(e.level, e.recipient, e.scheduled_at) for e in second] == [(2, "president", entered + 15 * M)]


def test_nobody_is_paged_three_times_at_once_after_a_late_stage(svc, roster, clock):
    """Days late: no recipient gets more than one page in the same minute."""
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "reported")
    clock.advance(2 * D)
    go(svc, iid, "assess", decision="activate", principal=by(leader(roster)))
    fired = svc.tick()
    per_person: dict[str, int] = {}
    for e in fired:
        per_person[e.recipient] = per_person.get(e.recipient, 0) + 1
    assert fired and max(per_person.values()) == 1
    assert {e.level for e in fired} == {1}


def test_regrade_to_a_deadline_already_past_starts_the_chain_now(svc, roster, clock):
    """Grade IV → I at +1h30: `verify_facts` (4 h → 30 min after entering `reported`) is already 1 h late;
    level 1 now, not all levels at once."""
    iid = open_incident(svc, severity="IV")
    drive_to(svc, iid, "reported")
    clock.advance(90 * M)
    svc.regrade(iid, severity="I", reason="多家媒体跟进", principal=by(leader(roster)))
    verify = svc.find_task(iid, "verify_facts")
    assert verify.due_at == START + 30 * M and verify.next_escalation_at == clock.now()
    fired = [e for e in svc.tick() if e.task_id == verify.id]
    assert [e.level for e in fired] == [1]
