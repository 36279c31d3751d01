"""The scheduler's firing loop under a virtual clock: a cycle fires what is due, kicks delivery and returns the
next due time read from the database; a wake-up requested while a cycle runs is never lost; each batch of
escalations records its own fire time."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event

from crisis import logs
from crisis.notify.channels import MemoryChannel
from crisis.principal import Principal as P
from crisis.scheduler import Deliverer, Runner
from crisis.service import escalation


@pytest.fixture()
def runner(svc, clock):
    channel = MemoryChannel()
    deliverer = Deliverer(svc, {name: channel for name in svc.channels}, clock)  # not started: tests deliver
    return Runner(svc, clock, deliverer), channel


def test_cycle_fires_and_returns_the_next_due_time_from_the_database(svc, clock, runner):
    r, channel = runner
    inc = svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"), severity="II")
    first_due = svc.next_due()
    assert first_due == inc.opened_at + timedelta(minutes=30)  # compile_report and preserve_evidence, grade II

    assert r.cycle("startup") == first_due
    r.deliverer.deliver_now()
    assigned = {m.dedupe_key for m in channel.delivered}
    assert all(k.startswith("task:") for k in assigned) and len(assigned) == 2 * len(svc.channels)

    clock.advance_to(first_due)
    assert r.cycle("due") == first_due + timedelta(minutes=15)
    fired = svc.escalations(inc.id)
    assert [(e.level, e.recipient) for e in fired] == [(1, "publicity_head"), (1, "info_staff")]
    r.deliverer.deliver_now()
    assert {m.dedupe_key for m in channel.delivered} - assigned == {
        f"esc:{e.task_id}:1:{c}" for e in fired for c in svc.channels}

    assert r.cycle("wake") == first_due + timedelta(minutes=15)  # a second wake at the same instant: nothing
    assert len(svc.escalations(inc.id)) == 2

    for t in svc.tasks(inc.id):
        svc.complete_task(t.id, principal=P("publicity_head"))
    assert r.cycle("sweep") is None


@pytest.fixture()
def log() -> io.StringIO:
    """Requested before `runner`: the runner binds its logger to the stream configured when it is built."""
    buf = io.StringIO()
    logs.configure(buf)
    return buf


def test_a_failing_cycle_is_logged_and_the_next_one_recovers(svc, clock, log, runner, monkeypatch):
    r, _ = runner
    inc = svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"), severity="II")
    clock.advance(timedelta(minutes=31))
    calls = {"n": 0}
    real_tick = svc.tick

    def flaky(now=None, **kw):  # stand-in for a database hiccup
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return real_tick(now, **kw)

    monkeypatch.setattr(svc, "tick", flaky)
    r.request_wake()  # the failed cycle's pause before retrying returns at once
    assert r.cycle("wake") <= clock.now()  # must not raise; asks to be retried soon
    assert svc.escalations(inc.id) == []
    failed = [json.loads(line) for line in log.getvalue().splitlines() if "scheduler_cycle_failed" in line]
    assert len(failed) == 1 and failed[0]["error"] == "database is locked" and failed[0]["reason"] == "wake"
    r.cycle("retry")
    assert len(svc.escalations(inc.id)) == 2


def test_a_wake_requested_while_a_cycle_runs_is_never_lost(svc, clock, runner, monkeypatch):
    """No sweep runs here and the next deadline is 30 virtual minutes (= 30 real minutes of waiting) away: only
    the wake requested during the first cycle can start the second one."""
    r, _ = runner
    svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"), severity="II")
    cycles: list[str] = []
    second = threading.Event()
    real_cycle = r.cycle

    def cycle(reason):
        cycles.append(reason)
        if len(cycles) == 1:
            r.request_wake("during-cycle")  # e.g. another command created an earlier deadline meanwhile
        else:
            second.set()
        return real_cycle(reason)

    monkeypatch.setattr(r, "cycle", cycle)
    loop = threading.Thread(target=r.serve, daemon=True)
    loop.start()
    try:
        assert second.wait(10), f"the wake requested during the first cycle was lost (cycles: {cycles})"
        assert cycles[:2] == ["startup", "during-cycle"]
        time.sleep(0.2)
        assert len(cycles) == 2  # and then it waits: no busy loop
    finally:
        r.stop()
        loop.join(10)
    assert not loop.is_alive()


def test_each_escalation_records_its_own_batch_time_not_the_cycles_start(svc, clock, runner, monkeypatch):
    """Three tasks come due; with a batch of one task, each is its own transaction. The clock moves on after
    every commit (as a real catch-up takes time): each row's fire time is the time its batch committed."""
    r, _ = runner
    monkeypatch.setattr(escalation, "BATCH", 1)
    ids = [svc.open_incident(title=f"t{i}", category="medical_dispute", principal=P("duty_officer"), severity="II").id
           for i in range(2)]  # two escalating tasks each
    due = svc.next_due()
    clock.advance_to(due)
    started = clock.now()
    commits: list = []

    def after_commit(_conn):
        commits.append(clock.now())
        clock.advance(timedelta(seconds=7))

    event.listen(svc.engine, "commit", after_commit)
    try:
        r.cycle("due")
    finally:
        event.remove(svc.engine, "commit", after_commit)
    fired = sorted((e for iid in ids for e in svc.escalations(iid)), key=lambda e: e.id)
    assert len(fired) == 4
    assert [e.fired_at for e in fired] == [started + timedelta(seconds=7 * k) for k in range(4)]
    assert all(e.fired_at in commits for e in fired)
    assert [e.late_seconds for e in fired] == [(e.fired_at - e.scheduled_at).total_seconds() for e in fired]
    assert fired[-1].late_seconds == 21.0  # the cycle's start would have said 0


def test_status_row_is_written_at_most_every_status_every_seconds_and_at_once_on_an_error(svc, clock, runner,
                                                                                          monkeypatch):
    """Steps falling due every few milliseconds mean a cycle every few milliseconds: the health row (which
    counts the pending steps) is not rewritten for each, or it would hold the write lock delivery needs."""
    from crisis import scheduler
    from crisis.store import status

    r, _channel = runner
    status.record_start(svc.engine, clock.now(), 30.0)
    for reason in ("startup", "due", "due"):
        r.cycle(reason)
    assert status.read_health(svc.engine, clock.now()).cycles == 1  # the first cycle only
    monkeypatch.setattr(svc, "tick", lambda **_kw: (_ for _ in ()).throw(RuntimeError("boom")))
    monkeypatch.setattr(scheduler, "RETRY_PAUSE", 0.0)
    r.cycle("due")
    health = status.read_health(svc.engine, clock.now())
    assert health.cycles == 4 and "boom" in (health.last_error or "")  # an error is written at once ...
    monkeypatch.undo()
    r.cycle("due")
    health = status.read_health(svc.engine, clock.now())
    assert health.cycles == 5 and health.last_error is None  # ... and so is its end
    monkeypatch.setattr(scheduler, "STATUS_EVERY", 0.0)
    r.cycle("due")
    assert status.read_health(svc.engine, clock.now()).cycles == 6
