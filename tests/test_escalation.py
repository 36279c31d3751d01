"""The escalation clock: each step fires once, in order, to the right person; stopping it stops it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import START, by, drive_to, finish_stage, leader, non_leader, open_incident, stage_tasks
from sqlalchemy.exc import IntegrityError

from crisis.errors import CrisisError, Forbidden, InputError
from crisis.playbook import Playbook, PlaybookSet
from crisis.roster import OnCall
from crisis.service import CrisisService
from crisis.service.base import _Tx
from crisis.store.db import write_session
from crisis.store.models import Escalation, Task
from crisis.store.prepared import driver_sql

M = timedelta(minutes=1)
H = timedelta(hours=1)
WAIT_II = 15 * M
CHANNELS = ("log", "file")


def single_task_incident(svc, severity: str = "II") -> tuple[int, int]:
    """An incident whose only escalating task is compile_report (the optional one is completed)."""
    iid = open_incident(svc, severity=severity)
    svc.complete_task(svc.find_task(iid, "preserve_evidence").id, principal=by(svc.roster.roles["info_staff"]))
    task = svc.find_task(iid, "compile_report")
    assert task.id is not None
    return iid, task.id


def esc_rows(svc, task_id: int) -> list[Escalation]:
    return sorted((e for e in svc.escalations() if e.task_id == task_id), key=lambda e: e.level)


def esc_messages(svc):
    return [m for m in svc.outbox() if m.payload.get("type") == "escalation"]


# ------------------------------------------------------------------------- firing order
def test_tick_before_due_fires_nothing(svc, clock):
    iid, _tid = single_task_incident(svc)
    n_out = len(svc.outbox())
    clock.advance(30 * M - timedelta(seconds=1))
    assert svc.tick() == []
    assert svc.escalations() == []
    assert len(svc.outbox()) == n_out
    task = svc.find_task(iid, "compile_report")
    assert task.escalation_level == 0 and task.next_escalation_at == START + 30 * M


@pytest.mark.parametrize(("key", "expected"), [
    # info_staff's task climbs every level of the chain
    ("preserve_evidence", [(1, "assignee", "info_staff"), (2, "group_head", "publicity_head"),
                           (3, "leadership_head", "president"), (4, "on_call", "oncall_admin"),
                           (5, "on_call", "oncall_admin"), (6, "on_call", "oncall_admin")]),
    # the group head's own task: the group_head step would page the same person again, so it is skipped
    ("compile_report", [(1, "assignee", "publicity_head"), (2, "leadership_head", "president"),
                        (3, "on_call", "oncall_admin"), (4, "on_call", "oncall_admin"),
                        (5, "on_call", "oncall_admin")]),
])
def test_chain_fires_level_by_level_to_roster_people(svc, roster, clock, key, expected):
    iid = open_incident(svc, severity="II")
    other = "compile_report" if key == "preserve_evidence" else "preserve_evidence"
    svc.complete_task(svc.find_task(iid, other).id, principal=by("publicity_head"))
    tid = svc.find_task(iid, key).id
    due = START + 30 * M
    assert roster.group_head("monitoring") == "publicity_head" and roster.leadership_head() == "president"
    for i, (level, target, recipient) in enumerate(expected):
        at = due + i * WAIT_II
        clock.advance_to(at - timedelta(seconds=1))
        assert svc.tick() == [], f"level {level} fired early"
        clock.advance_to(at)
        fired = svc.tick()
        assert [(e.level, e.target, e.recipient) for e in fired] == [(level, target, recipient)]
        e = fired[0]
        assert (e.task_id, e.incident_id, e.scheduled_at, e.fired_at, e.late_seconds) == (tid, iid, at, at, 0.0)
        assert svc.tick() == []  # a second wake-up at the same instant changes nothing
        task = svc.find_task(iid, key)
        assert task.escalation_level == level
        nxt = due + (i + 1) * WAIT_II if level < len(expected) else None
        assert task.next_escalation_at == nxt
    clock.advance(10 * H)
    assert svc.tick() == []  # chain exhausted (repeat: 2)
    rows = esc_rows(svc, tid)
    assert [(e.level, e.target, e.recipient) for e in rows] == expected
    fired_events = [e for e in svc.timeline(iid) if e.kind == "escalation_fired"]
    assert [(e.data["level"], e.data["recipient"], e.actor) for e in fired_events] == [
        (lv, r, "system") for lv, _, r in expected]


def test_on_call_recipient_follows_rota(engine, playbooks, roster, clock):
    """on_call resolves to whoever's window covers the firing time."""
    rota = roster.model_copy(update={"on_call": [
        OnCall.model_validate({"person": "oncall_admin", "from": START - H, "until": START + H}),
        OnCall.model_validate({"person": "oncall_backup", "from": START + H, "until": START + 24 * H}),
    ]})
    svc = CrisisService(engine, playbooks, rota, clock)
    _iid, _tid = single_task_incident(svc)
    clock.advance_to(START + 30 * M + 3 * WAIT_II)  # 13:30 + 45m = 14:15: backup's window
    fired = svc.tick()
    assert [(e.level, e.recipient) for e in fired] == [
        (1, "publicity_head"), (2, "president"), (3, "oncall_backup"), (4, "oncall_backup")]


def test_downtime_fires_every_missed_step_once_with_lateness(svc, clock):
    iid, tid = single_task_incident(svc)
    due = START + 30 * M
    clock.advance_to(due + 10 * H)
    fired = svc.tick()
    assert [e.level for e in fired] == [1, 2, 3, 4, 5]  # the head's own task: no group_head step
    for i, e in enumerate(fired):
        assert e.scheduled_at == due + i * WAIT_II
        assert e.fired_at == clock.now()
        assert e.late_seconds == (clock.now() - e.scheduled_at).total_seconds()
    assert fired[0].late_seconds == 10 * 3600
    assert svc.tick() == []  # exactly once
    clock.advance(H)
    assert svc.tick() == []
    assert len(esc_rows(svc, tid)) == 5
    assert len(esc_messages(svc)) == 5 * len(CHANNELS)
    task = svc.find_task(iid, "compile_report")
    assert task.escalation_level == 5 and task.next_escalation_at is None


def test_partial_catch_up_then_continue(svc, clock):
    _iid, _tid = single_task_incident(svc)
    due = START + 30 * M
    clock.advance_to(due + WAIT_II + 5 * M)  # levels 1 and 2 were due
    assert [(e.level, e.late_seconds) for e in svc.tick()] == [(1, 1200.0), (2, 300.0)]
    clock.advance_to(due + 2 * WAIT_II)
    assert [(e.level, e.late_seconds) for e in svc.tick()] == [(3, 0.0)]


def test_escalation_unique_per_task_and_level(svc, clock, engine):
    iid, tid = single_task_incident(svc)
    clock.advance_to(START + 30 * M)
    with engine.begin() as conn:  # a second worker reads the due step before the first one fires it ...
        stale = svc._steps(svc._due(conn, clock.now(), tid)[0], clock.now())
    (first,) = svc.tick()
    with engine.begin() as conn:  # ... and then loses the compare-and-set: nothing written, nothing returned
        assert svc._advance_and_record(conn, _Tx(), stale, clock.now()) == []
    with pytest.raises(IntegrityError), write_session(engine) as s:
        s.add(Escalation(task_id=tid, incident_id=iid, level=1, target="assignee", recipient="x",
                         scheduled_at=first.scheduled_at, fired_at=clock.now()))
    assert len(esc_rows(svc, tid)) == 1


# ------------------------------------------------------------------------- stopping the chain
def test_acknowledge_holds_that_chain_for_the_ack_timeout_then_it_resumes(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    cr = svc.find_task(iid, "compile_report")
    pe = svc.find_task(iid, "preserve_evidence")
    due = START + 30 * M
    clock.advance_to(due + WAIT_II)
    fired = svc.tick()
    assert sorted((e.task_id, e.level) for e in fired) == sorted(
        [(cr.id, 1), (cr.id, 2), (pe.id, 1), (pe.id, 2)])
    clock.advance(2 * M)
    acked = svc.acknowledge(principal=by(roster.group_head("monitoring")), task_id=cr.id)
    assert (acked.task_id, acked.level, acked.acked_by, acked.acked_at) == (
        cr.id, 2, roster.group_head("monitoring"), clock.now())
    hold_end = clock.now() + WAIT_II  # no ack_timeout in the playbook: the grade's wait
    task = svc.find_task(iid, "compile_report")
    assert task.acked_at == clock.now() and task.next_escalation_at == hold_end and task.status == "open"
    (ev,) = [e for e in svc.timeline(iid) if e.kind == "escalation_acknowledged"]
    assert ev.data["level"] == 2 and ev.data["after_seconds"] == 120.0
    assert ev.data["holds_until"] == hold_end.isoformat()
    assert svc.next_due() == due + 2 * WAIT_II  # the other task's level 3 comes first
    clock.advance_to(hold_end - timedelta(seconds=1))
    assert {e.task_id for e in svc.tick()} == {pe.id}  # the other task goes on; this one is held
    # still open at the end of the hold: the chain resumes at the next level, its waits kept after it
    clock.advance_to(hold_end)
    (resumed,) = svc.tick()
    assert (resumed.task_id, resumed.level, resumed.target, resumed.scheduled_at) == (cr.id, 3, "on_call", hold_end)
    clock.advance_to(hold_end + WAIT_II)
    assert [(e.task_id, e.level) for e in svc.tick() if e.task_id == cr.id] == [(cr.id, 4)]
    # the resumed chain can be acknowledged again
    again = svc.acknowledge(principal=by(roster.on_call_at(clock.now())), task_id=cr.id)
    assert again.level == 4


def test_assignee_cannot_mute_their_own_page(svc, roster, clock):
    """The assignee's acknowledgement of the first page holds the chain for a while only: the group head is
    paged at the end of it, and the overdue task never leaves the pending list."""
    iid = open_incident(svc, severity="II")
    pe = svc.find_task(iid, "preserve_evidence")
    svc.complete_task(svc.find_task(iid, "compile_report").id, principal=by("publicity_head"))
    clock.advance_to(START + 30 * M)
    (first,) = svc.tick()
    assert first.recipient == pe.assignee == "info_staff"
    svc.acknowledge(principal=by("info_staff"), escalation_id=first.id)
    clock.advance(WAIT_II)
    assert [e.id for e in svc.escalations(pending=True)] == [first.id]  # acknowledged, still listed
    (second,) = svc.tick()
    assert (second.level, second.recipient) == (2, roster.group_head("monitoring"))
    assert [e.id for e in svc.escalations(pending=True)] == [first.id, second.id]


def test_ack_names_the_escalation_it_acknowledges(svc, roster, clock):
    _iid, tid = single_task_incident(svc)
    clock.advance_to(START + 30 * M + WAIT_II)
    first, _ = svc.tick()
    acked = svc.acknowledge(principal=by(leader(roster)), escalation_id=first.id)
    assert acked.id == first.id and acked.level == 1
    rows = esc_rows(svc, tid)
    assert [(e.level, e.acked_by) for e in rows] == [(1, leader(roster)), (2, None)]


def test_playbook_ack_timeout_and_an_acknowledged_exhausted_chain(engine, roster, clock):
    pb = Playbook.model_validate({
        "category": "short", "name": {"zh": "短", "en": "Short"}, "default_severity": "II",
        "escalation": {"chain": ["assignee", "on_call"], "wait": "30m", "repeat": 0, "ack_timeout": "5m"},
        "stages": {"monitoring": {"tasks": [{"key": "look", "group": "monitoring", "role": "info_staff",
                                             "title": {"zh": "看", "en": "Look"}, "due": "10m"}]}},
    })
    svc = CrisisService(engine, PlaybookSet({"short": pb}), roster, clock)
    iid = svc.open_incident(title="t", category="short", principal=by(leader(roster))).id
    clock.advance_to(START + 10 * M + 30 * M)
    assert [e.level for e in svc.tick()] == [1, 2]  # the whole chain: nothing left to fire
    task = svc.tasks(iid)[0]
    assert task.next_escalation_at is None
    svc.acknowledge(principal=by(roster.on_call_at(clock.now())), task_id=task.id)
    assert svc.tasks(iid)[0].next_escalation_at == clock.now() + 5 * M  # the playbook's ack_timeout
    clock.advance(5 * M)
    (reminder,) = svc.tick()  # still open: one more reminder to the chain's last target
    assert (reminder.level, reminder.target) == (3, "on_call")


def test_acknowledge_by_escalation_id_and_by_on_call(svc, roster, clock):
    _iid, tid = single_task_incident(svc)
    clock.advance_to(START + 30 * M)
    (esc,) = svc.tick()
    on_call = roster.on_call[1].person  # not paged, but on call
    acked = svc.acknowledge(principal=by(on_call), escalation_id=esc.id)
    assert acked.id == esc.id and acked.acked_by == on_call
    # the paged people other than the acknowledger hear about it
    acks = [m for m in svc.outbox() if m.payload.get("type") == "acknowledged"]
    assert {m.dedupe_key for m in acks} == {f"ack:{tid}:{esc.id}:{esc.recipient}:{ch}" for ch in CHANNELS}


def test_acknowledge_refusals(svc, roster, clock):
    iid, tid = single_task_incident(svc)
    with pytest.raises(CrisisError, match="no escalation"):
        svc.acknowledge(principal=by(leader(roster)), task_id=tid)
    with pytest.raises(InputError):
        svc.acknowledge(principal=by(leader(roster)))
    with pytest.raises(InputError):
        svc.acknowledge(principal=by(leader(roster)), task_id=tid, escalation_id=1)
    clock.advance_to(START + 30 * M)
    svc.tick()
    stranger = roster.groups["logistics"].members[-1]
    with pytest.raises(Forbidden):
        svc.acknowledge(principal=by(stranger), task_id=tid)
    assert svc.find_task(iid, "compile_report").acked_at is None
    svc.acknowledge(principal=by(leader(roster)), task_id=tid)
    with pytest.raises(CrisisError, match="already acknowledged"):
        svc.acknowledge(principal=by(leader(roster)), task_id=tid)


def test_completion_cancels_pending_escalations(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    cr = svc.find_task(iid, "compile_report")
    pe = svc.find_task(iid, "preserve_evidence")
    clock.advance_to(START + 30 * M)
    assert len(svc.tick()) == 2
    svc.complete_task(cr.id, principal=by(roster.group_head("monitoring")))
    assert svc.find_task(iid, "compile_report").next_escalation_at is None
    clock.advance(10 * H)
    assert {e.task_id for e in svc.tick()} == {pe.id}
    assert len(esc_rows(svc, cr.id)) == 1
    with pytest.raises(CrisisError, match="done"):
        svc.acknowledge(principal=by(leader(roster)), task_id=cr.id)


def test_completion_before_due_means_no_escalation(svc, roster, clock):
    _iid, tid = single_task_incident(svc)
    clock.advance(29 * M)
    svc.complete_task(tid, principal=by(roster.group_head("monitoring")))
    clock.advance(10 * H)
    assert svc.tick() == []
    assert svc.next_due() is None


def test_closure_cancels_pending(svc, roster, clock):
    iid = open_incident(svc, severity="I")
    drive_to(svc, iid, "follow_up")
    open_tasks = [t for t in stage_tasks(svc, iid) if t.status == "open"]
    assert open_tasks and all(t.next_escalation_at for t in open_tasks)
    clock.advance(24 * H)  # track_opinion (24h for grade I) is now overdue
    assert svc.tick()
    svc.fire(iid, "close", principal=by(leader(roster)), override=True, reason="舆情平息，结案")
    assert all(t.status != "open" and t.next_escalation_at is None for t in svc.tasks(iid))
    assert svc.next_due() is None
    n = len(svc.escalations(iid))
    clock.advance(30 * 24 * H)
    assert svc.tick() == []
    assert len(svc.escalations(iid)) == n


def test_dismiss_cancels_pending(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "watch")
    (watch,) = stage_tasks(svc, iid)
    clock.advance(4 * H)  # watch_trend due 4h for grade II
    assert [e.task_id for e in svc.tick()] == [watch.id]
    svc.fire(iid, "assess", principal=by(leader(roster)), decision="dismiss")
    assert svc.incident(iid).stage == "dismissed"
    assert svc.find_task(iid, "watch_trend").status == "cancelled"
    assert svc.next_due() is None
    clock.advance(10 * H)
    assert svc.tick() == []


def test_reopen_cancels_pending_of_interrupted_stage(svc, roster, clock):
    iid = open_incident(svc, severity="I")
    drive_to(svc, iid, "follow_up")
    follow = {t.id for t in stage_tasks(svc, iid)}
    svc.fire(iid, "reopen", principal=by(non_leader(roster)))
    clock.advance(30 * 24 * H)
    fired = {e.task_id for e in svc.tick()}
    assert not fired & follow


def test_reopen_from_watch_stops_watch_escalation(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "watch")
    (watch,) = stage_tasks(svc, iid)
    svc.fire(iid, "reopen", principal=by(leader(roster)))
    finish_stage(svc, iid)  # the new cycle's reported tasks are done: nothing should be pending
    assert svc.next_due() is None
    clock.advance(10 * H)
    assert watch.id not in {e.task_id for e in svc.tick()}


def test_non_escalating_task_never_fires(svc, clock):
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "onsite")
    police = svc.find_task(iid, "call_police")
    assert police.escalation_plan == [] and police.next_escalation_at is None
    clock.advance(24 * H)
    assert police.id not in {e.task_id for e in svc.tick()}


# ------------------------------------------------------------------------- next_due and outbox
def test_next_due_is_earliest_pending(svc, roster, clock):
    assert svc.next_due() is None
    a = open_incident(svc, severity="I")  # compile 15m, evidence 30m
    assert svc.next_due() == START + 15 * M
    clock.advance(5 * M)
    b = open_incident(svc, severity="I")  # compile at 20m
    assert svc.next_due() == START + 15 * M
    clock.advance_to(START + 15 * M)
    svc.tick()  # a.compile level 1 fired; its next step is 10m later (grade I)
    assert svc.next_due() == START + 20 * M
    svc.complete_task(svc.find_task(b, "compile_report").id, principal=by(leader(roster)))
    assert svc.next_due() == START + 25 * M
    clock.advance(2 * M)
    svc.acknowledge(principal=by(leader(roster)), task_id=svc.find_task(a, "compile_report").id)
    assert svc.next_due() == START + 27 * M  # the end of the hold (the grade's wait after the acknowledgement)
    svc.complete_task(svc.find_task(a, "compile_report").id, principal=by(leader(roster)))
    assert svc.next_due() == START + 30 * M  # the evidence tasks
    for iid in (a, b):
        svc.complete_task(svc.find_task(iid, "preserve_evidence").id, principal=by(leader(roster)))
    assert svc.next_due() is None


def test_one_outbox_message_per_escalation(engine, playbooks, roster, clock):
    svc = CrisisService(engine, playbooks, roster, clock, channels=("file",))
    iid = open_incident(svc, severity="II")
    clock.advance(10 * H)
    fired = svc.tick()
    assert len(fired) == 11  # preserve_evidence: six steps; compile_report (the head's own): five
    msgs = esc_messages(svc)
    assert len(msgs) == len(fired)
    assert sorted(m.payload["escalation"] for m in msgs) == sorted(e.id for e in fired)
    assert len({m.dedupe_key for m in msgs}) == len(msgs)
    by_esc = {m.payload["escalation"]: m for m in msgs}
    for e in fired:
        m = by_esc[e.id]
        assert m.dedupe_key == f"esc:{e.task_id}:{e.level}:file"
        assert m.recipient == e.recipient and m.incident_id == iid and m.created_at == clock.now()
    svc.tick()
    assert len(esc_messages(svc)) == len(fired)


def test_outbox_per_channel_keys_unique(svc, clock):
    _iid, tid = single_task_incident(svc)
    clock.advance(10 * H)
    fired = svc.tick()
    keys = [m.dedupe_key for m in esc_messages(svc)]
    assert sorted(keys) == sorted(f"esc:{tid}:{e.level}:{ch}" for e in fired for ch in CHANNELS)
    assert len(set(keys)) == len(keys)



def test_reopen_after_close_starts_a_fresh_chain(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    drive_to(svc, iid, "closed")
    assert svc.next_due() is None
    clock.advance(2 * H)
    inc = svc.fire(iid, "reopen", principal=by(non_leader(roster)), note="再次发酵")
    new = {t.key: t for t in stage_tasks(svc, iid)}
    assert set(new) == {"assess_severity", "verify_facts"}
    assert all(t.cycle == inc.cycle == 2 for t in new.values())
    assert svc.next_due() == clock.now() + H  # grade II: 1h for the reported tasks
    clock.advance(H)
    assert {e.task_id for e in svc.tick()} == {t.id for t in new.values()}


# ------------------------------------------------------------------------- one bad task
def _corrupt_plan(engine, task_id: int, plan: list) -> None:

    with write_session(engine) as s:
        task = s.get(Task, task_id)
        task.escalation_plan = plan
        s.add(task)


@pytest.mark.parametrize("plan", [
    [["assignee", 0], ["group_head", 10**15]],  # the next step's time overflows datetime arithmetic
    [["no_such_target", 0]],                    # a chain step the roster cannot resolve
])
def test_a_task_that_cannot_escalate_does_not_stop_the_others(svc, engine, clock, plan):
    bad_iid, bad_tid = single_task_incident(svc)
    _, good_tid = single_task_incident(svc)
    assert bad_tid < good_tid  # the bad one comes first in the tick
    _corrupt_plan(engine, bad_tid, plan)
    clock.advance(30 * M)

    fired = svc.tick()

    assert [(e.task_id, e.level) for e in fired] == [(good_tid, 1)]  # the other incident was still paged
    bad = svc.find_task(bad_iid, "compile_report")
    assert (bad.status, bad.escalation_level, bad.next_escalation_at) == ("open", 0, None)
    (fault,) = [e for e in svc.timeline(bad_iid) if e.kind == "escalation_failed"]
    assert fault.task_id == bad_tid and fault.data["level"] == 1 and fault.data["error"]
    admin = svc.roster.on_call_at(clock.now())
    pages = [m for m in svc.outbox() if m.payload.get("type") == "engine_fault"]
    assert {(m.recipient, m.payload["task"], m.channel) for m in pages} == {(admin, bad_tid, c) for c in CHANNELS}
    assert svc.next_due() == START + 30 * M + WAIT_II  # the good task's next step: no spinning on the bad one

    clock.advance(WAIT_II)
    assert [e.task_id for e in svc.tick()] == [good_tid]  # reported once, not on every sweep
    assert len([m for m in svc.outbox() if m.payload.get("type") == "engine_fault"]) == len(CHANNELS)
    assert esc_rows(svc, bad_tid) == []


def test_a_batch_whose_compare_and_set_comes_up_short_is_rerun_task_by_task(svc, clock, monkeypatch):
    """The batch's one UPDATE counts the tasks it advanced; when that is fewer than it read (another ticker moved
    one in between), the batch is rolled back and re-run one task per transaction: nothing is lost, nothing
    fires twice, and no task is reported as faulted."""
    made = [single_task_incident(svc) for _ in range(3)]
    tasks = [tid for _iid, tid in made]
    clock.advance_to(START + 30 * M)
    real_due, calls = svc._due, []

    def due(conn, now, only):
        rows = real_due(conn, now, only)
        calls.append(only)
        if only is None and len(calls) == 1:  # the first batch: task 2 moves on under its feet
            driver_sql(conn, f"UPDATE task SET escalation_level = 7 WHERE id = {int(tasks[1])}")
        return rows

    monkeypatch.setattr(svc, "_due", due)
    fired = svc.tick()
    assert sorted(e.task_id for e in fired) == sorted(tasks) and all(e.level == 1 for e in fired)
    assert calls[0] is None and sorted(c for c in calls[1:] if c is not None) == sorted(tasks)  # one by one
    assert [e for iid, _tid in made for e in svc.timeline(iid) if e.kind == "escalation_failed"] == []
    assert svc.tick() == [] and sorted(e.task_id for e in svc.escalations()) == sorted(tasks)
