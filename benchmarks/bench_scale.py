"""Escalation lateness and restart catch-up, measured from outside a real `python -m crisis.scheduler` process.

Both are measured the same way, whatever the scheduler does inside: a watcher polls the `escalation` table
(a row's *commit* time is the first poll that sees it) and tails the notification file (a page's *delivery*
time is the first poll that sees its line), every POLL seconds. Lateness = that time − the step's scheduled
time, so it includes everything: wake-up, queueing behind other work, the commit, the channel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from history import FAR, History, ts

ROOT = Path(__file__).resolve().parents[1]
POLL = 0.02


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


@dataclass
class Watch:
    """First-seen wall times of escalation rows (committed) and of their lines in the notification file."""

    db: Path
    notify_file: Path
    tasks: set[int]
    committed: dict[tuple[int, int], float] = field(default_factory=dict)  # (task, level) -> epoch seconds
    scheduled: dict[tuple[int, int], datetime] = field(default_factory=dict)
    recorded_late: dict[tuple[int, int], float] = field(default_factory=dict)
    delivered: dict[tuple[int, int], float] = field(default_factory=dict)
    _last_id: int = 0
    _offset: int = 0

    def __post_init__(self) -> None:
        self._con = sqlite3.connect(self.db, isolation_level=None, timeout=30)
        self._last_id = self._con.execute("SELECT coalesce(max(id), 0) FROM escalation").fetchone()[0]
        self._offset = self.notify_file.stat().st_size if self.notify_file.exists() else 0

    def poll(self) -> None:
        now = time.time()
        rows = self._con.execute("SELECT id, task_id, level, scheduled_at, late_seconds FROM escalation "
                                 "WHERE id > ? ORDER BY id", (self._last_id,)).fetchall()
        for rid, task, level, scheduled, late in rows:
            self._last_id = rid
            if task in self.tasks:
                self.committed.setdefault((task, level), now)
                self.scheduled[(task, level)] = _parse(scheduled)
                self.recorded_late[(task, level)] = late
        if self.notify_file.exists():
            with self.notify_file.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
            cut = data.rfind(b"\n") + 1
            self._offset += cut
            for raw in data[:cut].splitlines():
                key = json.loads(raw)["key"]
                if key.startswith("esc:"):
                    _, task, level, _channel = key.split(":")
                    if int(task) in self.tasks:
                        self.delivered.setdefault((int(task), int(level)), now)

    def close(self) -> None:
        self._con.close()

    def lateness(self, seen: dict[tuple[int, int], float]) -> list[float]:
        return [seen[k] - self.scheduled[k].timestamp() for k in seen if k in self.scheduled]


def scheduler_env(db: Path, notify_file: Path, work: Path) -> dict[str, str]:
    return {**os.environ, "CRISIS_DB_URL": f"sqlite:///{db}", "CRISIS_NOTIFY_FILE": str(notify_file),
            "CRISIS_LOG": str(work / "crisis.log"), "PYTHONPATH": str(ROOT)}


def start_scheduler(env: dict[str, str], work: Path, sweep: float = 30.0) -> subprocess.Popen[bytes]:
    with (work / "scheduler.out").open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "crisis.scheduler", "--sweep", str(sweep)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def copy_history(h: History, work: Path) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    db, nf = work / "crisis.db", work / "notifications.jsonl"
    shutil.copyfile(h.db, db)
    shutil.copyfile(h.notify_file, nf)
    idx = Path(str(h.notify_file) + ".idx")
    if idx.exists():  # the file channel's key index (notify): copied with its file
        shutil.copyfile(idx, str(nf) + ".idx")
    return db, nf


def retime(db: Path, tasks: list[int], times: list[datetime]) -> None:
    """Make each task's single next step fall due at its time (one step each; the next one days later)."""
    plan = json.dumps([["assignee", 0], ["group_head", int(FAR.total_seconds())]])
    con = sqlite3.connect(db, isolation_level=None, timeout=30)
    con.execute("BEGIN IMMEDIATE")
    rows = [(ts(t), ts(t), plan, tid) for tid, t in zip(tasks, times, strict=True)]
    con.executemany("UPDATE task SET due_at = ?, next_escalation_at = ?, escalation_level = 0, "
                    "escalation_plan = ? WHERE id = ?", rows)
    con.execute("COMMIT")
    con.close()


def _wait_ready(work: Path, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until the scheduler logged its first cycle (or timeout)."""
    t0 = time.monotonic()
    log = work / "crisis.log"
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        if log.exists() and b'"scheduler_cycle"' in log.read_bytes()[-200_000:]:
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("nan")


def _watch_until_delivered(watch: Watch, proc: subprocess.Popen[bytes], count: int, seconds: float) -> None:
    """Poll the database and notification file until `count` deliveries are seen, the scheduler exits, or
    `seconds` pass; then take one last look."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(watch.delivered) < count and proc.poll() is None:
        watch.poll()
        time.sleep(POLL)
    watch.poll()


def bench_lateness(h: History, work: Path, *, due: int = 10_000, window: float = 60.0, lead: float = 15.0,
                   timeout: float = 180.0) -> dict[str, float]:
    """`due` steps fall due evenly over `window` seconds, starting `lead` s after the scheduler is started."""
    db, nf = copy_history(h, work)
    tasks = h.pending_tasks[:: max(1, len(h.pending_tasks) // due)][:due]
    t_start = datetime.now(UTC) + timedelta(seconds=lead)
    retime(db, tasks, [t_start + timedelta(seconds=window * k / len(tasks)) for k in range(len(tasks))])
    env = scheduler_env(db, nf, work)
    watch = Watch(db, nf, set(tasks))
    proc = start_scheduler(env, work)
    try:
        ready = _wait_ready(work, proc, lead)
        _watch_until_delivered(watch, proc, len(tasks), lead + window + timeout)
    finally:
        stop(proc)
        watch.close()
    commit, deliver = watch.lateness(watch.committed), watch.lateness(watch.delivered)
    rec = list(watch.recorded_late.values())
    res = {"due": len(tasks), "committed": len(watch.committed), "delivered": len(watch.delivered),
           "startup_s": ready, "commit_p50": pct(commit, 50), "commit_p99": pct(commit, 99),
           "commit_max": pct(commit, 100), "deliver_p50": pct(deliver, 50), "deliver_p99": pct(deliver, 99),
           "recorded_late_p99": pct(rec, 99)}
    print(f"lateness: {len(tasks):,} steps due within {window:.0f} s, {h.open_incidents * 5:,} pending, "
          f"{h.incidents:,} incidents of history (scheduler ready after {ready:.1f} s)\n"
          f"  committed {res['committed']:,} / delivered {res['delivered']:,}; commit late p50 "
          f"{res['commit_p50']:.2f} s p99 {res['commit_p99']:.2f} s max {res['commit_max']:.2f} s; delivery late "
          f"p50 {res['deliver_p50']:.2f} s p99 {res['deliver_p99']:.2f} s; engine-recorded late_seconds p99 "
          f"{res['recorded_late_p99']:.2f} s", flush=True)
    return res


def bench_restart(h: History, work: Path, *, overdue: int = 8_000, timeout: float = 180.0) -> dict[str, float]:
    """A scheduler is killed with SIGKILL; `overdue` steps come due while it is down; time the restart."""
    db, nf = copy_history(h, work)
    env = scheduler_env(db, nf, work)
    first = start_scheduler(env, work)
    try:
        _wait_ready(work, first, 120)
    finally:
        stop(first, signal.SIGKILL)
    tasks = h.pending_tasks[1:: max(1, len(h.pending_tasks) // overdue)][:overdue]
    now = datetime.now(UTC)
    retime(db, tasks, [now - timedelta(seconds=600 * (k + 1) / len(tasks)) for k in range(len(tasks))])
    watch = Watch(db, nf, set(tasks))
    t0 = time.time()
    proc = start_scheduler(env, work)
    try:
        _watch_until_delivered(watch, proc, len(tasks), timeout)
    finally:
        stop(proc)
        watch.close()
    fired = max(watch.committed.values(), default=t0) - t0
    delivered = max(watch.delivered.values(), default=t0) - t0
    first_delivery = min(watch.delivered.values(), default=t0) - t0
    res = {"overdue": len(tasks), "committed": len(watch.committed), "delivered": len(watch.delivered),
           "all_fired_s": fired, "all_delivered_s": delivered, "first_delivered_s": first_delivery}
    print(f"restart after kill -9: {len(tasks):,} overdue, {h.open_incidents * 5:,} pending; "
          f"{res['committed']:,} fired in {fired:.1f} s, {res['delivered']:,} delivered in {delivered:.1f} s "
          f"(first page after {first_delivery:.1f} s), from process start", flush=True)
    return res
