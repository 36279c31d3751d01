"""The scheduler's cycle under a virtual clock: fire what is due, deliver, point the stored wake job
at the next deadline (and remove it when nothing is pending)."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from crisis import logs
from crisis.notify.channels import MemoryChannel
from crisis.principal import Principal as P
from crisis.scheduler import WAKE_JOB, Runner, make_scheduler


@pytest.fixture()
def runner(svc, clock):
    sched = make_scheduler(svc.engine)
    sched.start(paused=True)  # jobs reach the SQLAlchemy job store but never run by themselves
    channel = MemoryChannel()
    r = Runner(svc, {name: channel for name in svc.channels}, clock, sched)
    yield r, sched, channel
    sched.remove_all_jobs()  # APScheduler processes due jobs once more while stopping; give it none
    sched.shutdown(wait=True)


def test_cycle_fires_delivers_and_arms_the_wake_job(svc, clock, runner):
    r, sched, channel = runner
    inc = svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"), severity="II")
    first_due = svc.next_due()
    assert first_due == inc.opened_at + timedelta(minutes=30)  # compile_report and preserve_evidence, grade II

    r.cycle("startup")
    job = sched.get_job(WAKE_JOB, jobstore="db")
    assert job is not None and job.next_run_time == first_due
    assert job.func_ref == "crisis.scheduler:wake" and job.args == () and job.misfire_grace_time is None
    assigned = {m.dedupe_key for m in channel.delivered}
    assert all(k.startswith("task:") for k in assigned) and len(assigned) == 2 * len(svc.channels)

    clock.advance_to(first_due)
    r.cycle("wake")
    fired = svc.escalations(inc.id)
    assert [(e.level, e.recipient) for e in fired] == [(1, "publicity_head"), (1, "info_staff")]
    assert {m.dedupe_key for m in channel.delivered} - assigned == {
        f"esc:{e.task_id}:1:{c}" for e in fired for c in svc.channels}
    assert sched.get_job(WAKE_JOB, jobstore="db").next_run_time == first_due + timedelta(minutes=15)

    # a second wake at the same instant changes nothing
    r.cycle("wake")
    assert len(svc.escalations(inc.id)) == 2

    for t in svc.tasks(inc.id):
        svc.complete_task(t.id, principal=P("publicity_head"))
    r.cycle("sweep")
    assert svc.next_due() is None
    assert sched.get_job(WAKE_JOB, jobstore="db") is None


@pytest.fixture()
def log() -> io.StringIO:
    """Requested before `runner`: the runner binds its logger to the stream configured when it is built."""
    buf = io.StringIO()
    logs.configure(buf)
    return buf


def test_a_failing_cycle_is_logged_and_the_next_one_recovers(svc, clock, log, runner, monkeypatch):
    r, _, _ = runner
    inc = svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"), severity="II")
    clock.advance(timedelta(minutes=31))
    calls = {"n": 0}
    real_tick = svc.tick

    def flaky(now=None):  # stand-in for a database hiccup
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return real_tick(now)

    monkeypatch.setattr(svc, "tick", flaky)
    r.cycle("wake")  # must not raise: the process keeps running
    assert svc.escalations(inc.id) == []
    failed = [json.loads(line) for line in log.getvalue().splitlines() if "scheduler_cycle_failed" in line]
    assert len(failed) == 1 and failed[0]["error"] == "database is locked" and failed[0]["reason"] == "wake"
    r.cycle("sweep")
    assert len(svc.escalations(inc.id)) == 2
