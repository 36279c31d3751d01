"""The scheduler process: wakes the engine when the next deadline comes due, and delivers notifications.

Deadlines are rows (`task.next_escalation_at`); APScheduler only holds a *hint* — one `date` job,
"crisis-wake", in its SQLAlchemy job store on the same database, set to the earliest pending step.
Every wake-up recomputes what is due at `now` and fires each step through the engine's
compare-and-set, so a late, doubled or replayed wake-up changes nothing twice. A periodic sweep
picks up deadlines created by other processes (the CLI) and retries undelivered notifications.

On start the scheduler first takes a leader lock (a file lock next to the SQLite database, or a
PostgreSQL advisory lock), because two APScheduler instances must never share a job store; then it
catches up on everything that came due while nobody was running, before it sleeps.

Run: `crisis scheduler run` or `python -m crisis.scheduler [--sweep SECONDS]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from crisis import logs
from crisis.clock import Clock, SystemClock
from crisis.config import Settings, build_channels, build_service
from crisis.errors import Conflict, CrisisError, InputError
from crisis.notify.channels import Channel
from crisis.notify.dispatch import dispatch
from crisis.service import CrisisService
from crisis.store.db import sqlite_path

WAKE_JOB = "crisis-wake"
SWEEP_JOB = "crisis-sweep"
JOBS_TABLE = "apscheduler_jobs"
ADVISORY_KEY = 0x637269736973  # "crisis": the PostgreSQL advisory lock every scheduler competes for

_UNKNOWN = object()  # the wake job's state in the store before this process has set it
_runner: Runner | None = None  # the pickled wake job refers to `crisis.scheduler:wake`, which finds it here


class AlreadyRunning(Conflict):
    """Another scheduler holds the leader lock for this database."""


def wake() -> None:
    """Job target (referenced by name so the job store can pickle it): run one engine cycle."""
    if _runner is not None:
        _runner.cycle("wake")


def sweep() -> None:
    if _runner is not None:
        _runner.cycle("sweep")


class Runner:
    """One cycle = fire what is due, deliver the outbox, re-arm the wake job at the next deadline."""

    def __init__(self, svc: CrisisService, channels: Mapping[str, Channel], clock: Clock,
                 scheduler: BackgroundScheduler) -> None:
        self.svc = svc
        self.channels = channels
        self.clock = clock
        self.scheduler = scheduler
        self.log = logs.get_logger(component="scheduler", pid=os.getpid())
        self._lock = threading.Lock()  # wake and sweep never interleave
        self._armed: datetime | object | None = _UNKNOWN  # what the stored wake job points at (None: no job)

    def cycle(self, reason: str) -> None:
        with self._lock:
            try:
                now = self.clock.now()
                if reason == "wake":
                    self._armed = None  # a fired date job is removed from the store
                fired = self.svc.tick(now)
                delivered = dispatch(self.svc.engine, self.channels, now)
                nxt = self.svc.next_due()
                self.arm(nxt)
            except Exception as exc:  # a bad cycle must not kill the process: the sweep retries
                self.log.exception("scheduler_cycle_failed", reason=reason, error=str(exc))
                return
            if fired or delivered or reason != "sweep":
                self.log.info("scheduler_cycle", reason=reason, fired=len(fired), delivered=delivered,
                              max_late_seconds=max((e.late_seconds for e in fired), default=None),
                              next_due=nxt.isoformat() if nxt else None)

    def arm(self, when: datetime | None) -> None:
        """Point the persistent wake job at `when` (or remove it when nothing is pending)."""
        if when == self._armed:
            return  # the sweep found nothing new: no job-store write
        if when is None:
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(WAKE_JOB, jobstore="db")
        else:
            self.scheduler.add_job("crisis.scheduler:wake", "date", run_date=when, id=WAKE_JOB, jobstore="db",
                                   replace_existing=True, misfire_grace_time=None, coalesce=True, max_instances=1)
        self._armed = when


def make_scheduler(engine: Engine) -> BackgroundScheduler:
    # misfire_grace_time=None: a wake-up due while we were down still runs (APScheduler 3 drops it otherwise).
    return BackgroundScheduler(
        jobstores={"db": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE), "default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        timezone="UTC",
    )


@contextlib.contextmanager
def leader_lock(engine: Engine) -> Iterator[None]:
    """Hold the one-scheduler-per-database lock for the block; raise AlreadyRunning if taken."""
    path = sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if engine.dialect.name == "sqlite":
        if path is None:
            yield  # in-memory database: nobody else can reach it
            return
        with _file_lock(path.with_name(path.name + ".scheduler.lock")):
            yield
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            _pg_lock(conn)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                conn.commit()
    else:
        raise InputError(f"no leader lock for database dialect {engine.dialect.name!r}")


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunning(f"another scheduler (pid {holder}) is running on this database "
                                 f"(lock {lock_path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield  # the kernel releases the lock if we are killed, even with SIGKILL
    finally:
        os.close(fd)


def _pg_lock(conn: Connection) -> None:
    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
    conn.commit()
    if not got:
        raise AlreadyRunning("another scheduler holds the PostgreSQL advisory lock for this database")


def run(settings: Settings, *, sweep_seconds: float = 30.0, clock: Clock | None = None) -> None:
    """Run until SIGTERM/SIGINT. Catches up first, so a restart fires what came due while down."""
    global _runner
    if sweep_seconds <= 0:
        raise InputError("--sweep must be a positive number of seconds")
    logs.configure(settings.log_path)
    clock = clock or SystemClock()
    svc = build_service(settings, clock)
    with leader_lock(svc.engine):
        scheduler = make_scheduler(svc.engine)
        runner = Runner(svc, build_channels(settings), clock, scheduler)
        _runner = runner
        runner.log.info("scheduler_started", db=str(svc.engine.url), sweep_seconds=sweep_seconds)

        stopping = threading.Event()
        received: list[str] = []

        def stop(signum: int, _frame: FrameType | None) -> None:
            received.append(signal.Signals(signum).name)  # no I/O here: the main thread may be mid-write
            stopping.set()  # safe at any moment, even before the scheduler has started

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        scheduler.add_job("crisis.scheduler:sweep", "interval", seconds=sweep_seconds, id=SWEEP_JOB,
                          jobstore="default", replace_existing=True)
        try:
            # Catch up first: a restart fires what came due while down, whatever the job store holds.
            # A past-due wake job left in the store then also runs at once; the engine's CAS makes it a no-op.
            runner.cycle("startup")
            scheduler.start()
            while not stopping.wait(1.0):
                pass
            runner.log.info("scheduler_stopping", signal=received[0] if received else None)
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            _runner = None
            runner.log.info("scheduler_stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crisis.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=float, default=30.0, help="safety-net sweep interval in seconds")
    args = parser.parse_args(argv)
    try:
        run(Settings.from_env(), sweep_seconds=args.sweep)
    except CrisisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Run inside the importable module, not `__main__`: the jobs name `crisis.scheduler:wake`, whose
    # module-level `_runner` must be the one this process sets.
    from crisis.scheduler import main as _main

    sys.exit(_main())


@contextlib.contextmanager
def background(svc: CrisisService, channels: Mapping[str, Channel], clock: Clock, *,
               sweep_seconds: float = 30.0) -> Iterator[Runner]:
    """Run the scheduler in this process's background threads for the block (`crisis serve`): the same
    leader lock, catch-up cycle and jobs as `run`, without taking over the signal handlers, which belong
    to whoever runs the foreground (uvicorn)."""
    global _runner
    if sweep_seconds <= 0:
        raise CrisisError("--sweep must be a positive number of seconds")
    with leader_lock(svc.engine):
        scheduler = make_scheduler(svc.engine)
        runner = Runner(svc, channels, clock, scheduler)
        _runner = runner
        runner.log.info("scheduler_started", db=str(svc.engine.url), sweep_seconds=sweep_seconds, background=True)
        scheduler.add_job("crisis.scheduler:sweep", "interval", seconds=sweep_seconds, id=SWEEP_JOB,
                          jobstore="default", replace_existing=True)
        try:
            runner.cycle("startup")
            scheduler.start()
            yield runner
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            _runner = None
            runner.log.info("scheduler_stopped")
