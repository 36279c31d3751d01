"""kill -9 of a real scheduler in the middle of a delivery batch: after a restart each message reaches the
file channel exactly once (rows claimed by the dead process are claimed again when their lease runs out; the
file channel's index, caught up from its stored offset, skips what was written but never marked). The test holds
the database's write lock while it kills, so the kill lands between a batch's write and its mark, however fast
a batch is written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, crisis_env
from sqlalchemy import func, insert, select

from crisis.clock import SystemClock
from crisis.config import Settings, build_service
from crisis.notify.outbox import Routing, messages
from crisis.store.models import OutboxMessage

N = 6000  # batches of 200 (about 30 of them): enough that the kill lands while some are still to come
T = OutboxMessage.__table__  # type: ignore[attr-defined]


def lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(x)["key"] for x in path.read_text("utf-8").splitlines() if x.strip()]


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_kill_9_mid_batch_delivers_each_message_exactly_once(tmp_path):
    env = {**os.environ, **crisis_env(tmp_path), "PYTHONPATH": str(ROOT), "CRISIS_NOTIFY_TIMEOUT": "0.2",
           "CRISIS_NOTIFY_LEASE": "1"}
    settings = Settings(db_url=env["CRISIS_DB_URL"], playbooks_dir=Path(env["CRISIS_PLAYBOOKS"]),
                        roster_path=Path(env["CRISIS_ROSTER"]), notify_file=Path(env["CRISIS_NOTIFY_FILE"]),
                        log_path=Path(env["CRISIS_LOG"]))
    svc = build_service(settings, SystemClock())
    now = svc.clock.now()
    rows = [r for i in range(N) for r in messages(
        kind="escalation", key=f"esc:{i}:1", recipient="oncall_admin", incident_id=None, now=now, roster=svc.roster,
        routing=Routing(channels=("file",)), facts={"severity": "I", "task": i, "level": 1})]
    with svc.engine.begin() as conn:
        conn.execute(insert(T), rows)
    out = tmp_path / "scheduler.out"
    notify_file = Path(env["CRISIS_NOTIFY_FILE"])

    def start() -> subprocess.Popen[bytes]:
        with out.open("ab") as fh:
            return subprocess.Popen([sys.executable, "-m", "crisis.scheduler", "--sweep", "0.2"], env=env,
                                    stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)

    def undelivered() -> int:
        with svc.engine.connect() as conn:
            return conn.execute(select(func.count()).where(T.c.delivered_at.is_(None))).scalar_one()

    def mid_batch(lock: sqlite3.Connection) -> bool:
        """With the database's write lock held (the scheduler cannot mark what it writes), is a written batch
        still unmarked? Then the scheduler is killed right there, between its write and its mark."""
        lock.execute("BEGIN IMMEDIATE")
        try:
            end = time.monotonic() + 2
            while time.monotonic() < end:
                marked = lock.execute("SELECT count(*) FROM outboxmessage WHERE delivered_at IS NOT NULL").fetchone()[0]
                if len(lines(notify_file)) > marked:
                    first.send_signal(signal.SIGKILL)
                    first.wait(10)
                    return True
                time.sleep(0.02)
            return False  # it was between a mark and its next claim: let it go on and try again
        finally:
            lock.execute("ROLLBACK")

    first = start()
    lock = sqlite3.connect(env["CRISIS_DB_URL"].removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    try:
        wait_for(lambda: notify_file.exists(), 60, "the first messages")
        assert any(mid_batch(lock) for _ in range(10)), "never caught the scheduler between a write and its mark"
    finally:
        lock.close()
        if first.poll() is None:
            first.kill()
    written = len(lines(notify_file))
    with svc.engine.connect() as conn:
        marked = conn.execute(select(func.count()).where(T.c.delivered_at.is_not(None))).scalar_one()
        claimed = conn.execute(select(func.count()).where(T.c.delivered_at.is_(None),
                                                          T.c.claimed_until.is_not(None))).scalar_one()
    assert written < N, "machine too fast: everything was delivered before the kill"
    assert claimed > 0 and written > marked  # killed holding a claimed batch, written, unmarked

    second = start()
    try:
        wait_for(lambda: undelivered() == 0, 60, "every message marked delivered after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        finally:
            if second.poll() is None:
                second.kill()
    keys = lines(notify_file)
    assert len(keys) == N and len(set(keys)) == N  # each exactly once
