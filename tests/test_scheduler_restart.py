"""A real scheduler process is killed with SIGKILL while deadlines are pending, then restarted.

Every escalation step that came due (before, during and after the outage) must reach the recipient's
channel exactly once, in order, and the ones due during the outage fire late, with their lateness recorded.
Real time is used here (it is a process test), so the playbook below has fractional-second clocks; the first
scheduler is up before the incident opens, so no deadline waits on a process start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import ROOT, by, crisis_env
from sqlmodel import Session, select

from crisis.clock import SystemClock
from crisis.config import Settings, build_service
from crisis.store.models import Escalation
from crisis.store.status import read_health

FAST_PLAYBOOK = """
category: fast_test
name: {zh: 快速测试, en: Fast test}
default_severity: II
escalation:
  chain: [assignee, group_head, leadership_head, on_call]
  wait: 1s
  repeat: 0
stages:
  monitoring:
    tasks:
      - {key: early, group: monitoring, role: info_staff, title: {zh: 早, en: Early}, due: 0.5s}
      - {key: late, group: response, role: legal_counsel, title: {zh: 晚, en: Late}, due: 2.5s}
"""
EARLY, LATE, WAIT = 0.5, 2.5, 1  # seconds after opening: first step of each task; between steps (plans
# count whole seconds)
SWEEP = 0.2

# Lateness allowed for a step fired by a live scheduler (process wake-up jitter on a busy CI box).
LIVE_SLACK = 2.5


@pytest.fixture
def env(tmp_path: Path, migrated_db: Path) -> dict[str, str]:
    shutil.copyfile(migrated_db, tmp_path / "crisis.db")  # `crisis db init`
    pb = tmp_path / "playbooks"
    pb.mkdir()
    (pb / "fast.yaml").write_text(FAST_PLAYBOOK, encoding="utf-8")
    return {**os.environ, **crisis_env(tmp_path, pb), "PYTHONPATH": str(ROOT)}


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(db_url=env["CRISIS_DB_URL"], playbooks_dir=Path(env["CRISIS_PLAYBOOKS"]),
                    roster_path=Path(env["CRISIS_ROSTER"]), notify_file=Path(env["CRISIS_NOTIFY_FILE"]),
                    log_path=Path(env["CRISIS_LOG"]))


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "crisis.scheduler", "--sweep", str(SWEEP)], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def delivered(env: dict[str, str]) -> list[dict]:
    path = Path(env["CRISIS_NOTIFY_FILE"])
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def esc_keys(env: dict[str, str]) -> list[str]:
    """Escalation keys as delivered to the file channel: esc:<task>:<level>:file."""
    return [n["key"] for n in delivered(env) if n["key"].startswith("esc:")]


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def running(svc) -> bool:
    return read_health(svc.engine, svc.clock.now()).cycles >= 1


def test_sigkill_restart_fires_each_due_escalation_exactly_once(env, tmp_path):
    svc = build_service(settings_of(env), SystemClock())
    out = tmp_path / "scheduler.out"
    first = start(env, out)
    try:
        wait_for(lambda: running(svc), 30, "the first scheduler's first cycle")
        inc = svc.open_incident(title="scheduler restart", category="fast_test", principal=by("duty_officer"))
        opened = inc.opened_at
        tasks = {t.key: t for t in svc.tasks(inc.id)}
        early, late = tasks["early"].id, tasks["late"].id
        # the live scheduler (which learns of the incident at its next sweep) fires `early` L1 and L2 on time ...
        wait_for(lambda: f"esc:{early}:2:file" in esc_keys(env), 15, "early level 2 from the first scheduler")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = datetime.now(UTC)
    before = esc_keys(env)
    assert f"esc:{early}:1:file" in before
    assert not any(k.startswith(f"esc:{late}:") for k in before), "machine too slow: `late` fired before the kill"

    # ... then nothing runs while everything else comes due: early L3-L4, late L1-L4
    time.sleep(max(0.0, (opened + timedelta(seconds=LATE + 3 * WAIT + 0.2) - datetime.now(UTC)).total_seconds()))
    restarted_at = datetime.now(UTC)

    second = start(env, out)
    try:
        expected = {f"esc:{t}:{lvl}:file" for t in (early, late) for lvl in (1, 2, 3, 4)}
        wait_for(lambda: expected <= set(esc_keys(env)), 20, "all eight escalation steps after restart")
        time.sleep(4 * SWEEP)  # several more sweeps: nothing may be delivered twice
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            assert second.wait(15) == 0, out.read_text(errors="replace")
        finally:
            if second.poll() is None:
                second.kill()

    keys = esc_keys(env)
    assert sorted(keys) == sorted(expected), f"each step exactly once, got {keys}"
    # each task's steps reach the channel in chain order
    for t in (early, late):
        mine = [int(k.split(":")[2]) for k in keys if k.startswith(f"esc:{t}:")]
        assert mine == [1, 2, 3, 4]
    recipients = {n["key"]: n["to"] for n in delivered(env)}
    assert [recipients[f"esc:{late}:{lvl}:file"] for lvl in (1, 2, 3, 4)] == \
        ["legal", "medical_affairs", "president", "oncall_admin"]  # every level reaches someone new

    rows = {(e.task_id, e.level): e for e in svc.escalations(inc.id)}
    assert set(rows) == {(t, lvl) for t in (early, late) for lvl in (1, 2, 3, 4)}
    for (t, lvl), e in rows.items():
        scheduled = opened + timedelta(seconds=(EARLY if t == early else LATE) + (lvl - 1) * WAIT)
        assert e.scheduled_at == scheduled
        assert e.fired_at >= scheduled  # never early
        if scheduled > killed_at and scheduled < restarted_at:
            # came due while nobody ran: fired by the restarted process, lateness recorded
            assert e.fired_at >= restarted_at - timedelta(seconds=0.1)
            assert e.late_seconds == pytest.approx((e.fired_at - scheduled).total_seconds())
            assert e.late_seconds > 0
        if t == early and lvl <= 2:
            assert e.late_seconds < LIVE_SLACK  # fired live, on time
    with Session(svc.engine) as s:
        assert len(s.exec(select(Escalation)).all()) == 8


def test_second_scheduler_is_refused_while_one_runs(env, tmp_path):
    out = tmp_path / "scheduler.out"
    first = start(env, out)
    try:
        lock = Path(env["CRISIS_DB_URL"].removeprefix("sqlite:///") + ".scheduler.lock")
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), 15, "leader lock")
        second = subprocess.run([sys.executable, "-m", "crisis.scheduler"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"another scheduler (pid {first.pid}) is running" in second.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    # SIGKILL released the lock with the process: a new scheduler starts
    third = start(env, out)
    try:
        wait_for(lambda: lock.read_text().strip() == str(third.pid), 15, "lock taken over after SIGKILL")
    finally:
        third.send_signal(signal.SIGTERM)
        third.wait(15)
