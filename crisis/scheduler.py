"""The scheduler process: fires escalation steps when they come due, and delivers notifications.

Deadlines are rows (`task.next_escalation_at`). The runner owns the waiting: after every cycle it reads the
next due time from the database and sleeps until then, or until a wake-up is requested (a hint: "something
may have changed"). A wake requested while a cycle runs is kept by the event and makes the next wait return at
once, so no wake-up is ever lost; nothing believes a job is "armed" across a cycle. (The previous design
re-armed an APScheduler date job from inside its own run; APScheduler refused the second instance and
nothing fired until the next sweep.) APScheduler only drives the periodic safety-net sweep, which requests a
wake-up to pick up deadlines created by other processes (the CLI) and to retry undelivered notifications.

A cycle fires due steps in batches through the engine's compare-and-set, so a late, doubled or replayed
wake-up changes nothing twice; delivery runs in its own thread and is kicked after every committed batch,
so the first pages of a long catch-up go out while the rest is still being fired.

On start the scheduler first takes a leader lock (a file lock next to the SQLite database, or a
PostgreSQL advisory lock), then catches up on everything that came due while nobody was running.

Run: `crisis scheduler run` or `python -m crisis.scheduler [--sweep SECONDS]`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from crisis import logs
from crisis.clock import Clock, SystemClock
from crisis.config import build_channels, build_dispatcher, build_service
from crisis.errors import Conflict, CrisisError, InputError
from crisis.notify.channels import Channel
from crisis.notify.dispatch import Dispatcher
from crisis.notify.messages import Renderer
from crisis.service import CrisisService
from crisis.settings import Settings, load_settings
from crisis.store import status
from crisis.store.db import DatabaseChanged, check_same_database, database_identity, sqlite_path

SWEEP_JOB = "crisis-sweep"
MIN_SWEEP, MAX_SWEEP = 0.1, 3600.0  # seconds: below, the sweep spins a CPU; above, CLI deadlines wait too long
ADVISORY_KEY = 0x637269736973  # "crisis": the PostgreSQL advisory lock every scheduler competes for
RETRY_PAUSE = 1.0  # seconds between a failed cycle and the next try
MAX_WAIT = 3600.0  # seconds; an idle runner still re-reads the database at least this often
STATUS_EVERY = 1.0  # seconds between two writes of the status row (health turns stale after minutes)


class AlreadyRunning(Conflict):
    """Another scheduler holds the leader lock for this database."""


class Deliverer:
    """Delivers the outbox in its own thread, so firing never waits on a channel; `kick()` after a commit.
    The work (claim, deliver on per-channel pools, mark, back off) is crisis.notify.dispatch's."""

    def __init__(self, svc: CrisisService, channels: Mapping[str, Channel], clock: Clock, *,
                 dispatcher: Dispatcher | None = None) -> None:
        self.dispatcher = dispatcher or Dispatcher(
            svc.engine, channels, Renderer(svc.roster, svc.routing.tz), clock, routing=svc.routing,
            on_call=lambda now: svc.on_call(now).primary)
        self.delivered = 0

    def start(self) -> None:
        self.dispatcher.start()

    def kick(self) -> None:
        self.dispatcher.kick()

    def stop(self) -> None:
        self.dispatcher.stop()

    def deliver_now(self) -> int:
        """Deliver what is due in the calling thread and wait for it (tests)."""
        n = self.dispatcher.drain().delivered
        self.delivered += n
        return n


class Runner:
    """The firing loop: cycle, read the next due time, wait for it or for a wake-up request, repeat."""

    def __init__(self, svc: CrisisService, clock: Clock, deliverer: Deliverer) -> None:
        self.svc = svc
        self.clock = clock
        self.deliverer = deliverer
        self.log = logs.get_logger(component="scheduler", pid=os.getpid())
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reasons: list[str] = []
        self.cycles = 0
        self.thread: threading.Thread | None = None  # the thread running `serve`, when `background` started it
        self.identity = database_identity(svc.engine)  # the database this runner started on
        self.fatal: str | None = None  # why the runner gave up (its database is gone): the process must exit
        self._recorded = -math.inf  # when the status row was last written (monotonic seconds)
        self._last_error: str | None = None

    def request_wake(self, reason: str = "wake") -> None:
        """Ask for a cycle as soon as possible (safe from any thread; never lost, see `serve`)."""
        self._reasons.append(reason)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def serve(self) -> None:
        """Run cycles until `stop()`. The wake event is cleared *before* each cycle, so a request made while
        the cycle runs leaves it set and the following wait returns at once."""
        reason = "startup"
        while not self._stopping.is_set():
            self._wake.clear()
            nxt = self.cycle(reason)
            if self._stopping.is_set():
                break
            self._wake.wait(self._timeout(nxt))
            reason = self._reasons.pop(0) if self._reasons else "due"
            self._reasons.clear()

    def _timeout(self, nxt: datetime | None) -> float:
        if nxt is None:
            return MAX_WAIT
        return min(MAX_WAIT, max(0.0, (nxt - self.clock.now()).total_seconds()))

    def cycle(self, reason: str) -> datetime | None:
        """Fire what is due (delivery kicked after each batch); return the next due time from the database.

        A failing cycle is logged and retried after a short pause, never fatal to the process, except one
        that finds the database removed, replaced or without its schema: firing on would page nobody while
        looking alive, so the runner stops with `fatal` set and the process exits non-zero (the supervisor
        restarts it, and someone notices)."""
        self.cycles += 1
        try:
            check_same_database(self.svc.engine, self.identity)
        except DatabaseChanged as exc:
            self.fatal = str(exc)
            self.log.error("scheduler_database_changed", error=self.fatal)
            self.stop()
            return None
        try:
            fired = self.svc.tick(on_batch=lambda _batch: self.deliverer.kick())
            self.deliverer.kick()  # also for messages queued by other processes (sweep)
            nxt = self.svc.next_due()
        except Exception as exc:  # e.g. the database is locked: try again soon
            self.log.exception("scheduler_cycle_failed", reason=reason, error=str(exc))
            self._record(None, f"{type(exc).__name__}: {exc}")
            self._wake.wait(RETRY_PAUSE)  # (a stop or wake request ends the pause)
            return self.clock.now()
        self._record(nxt, None)
        if fired or reason != "sweep":
            self.log.info("scheduler_cycle", reason=reason, fired=len(fired),
                          max_late_seconds=max((e.late_seconds for e in fired), default=None),
                          next_due=nxt.isoformat() if nxt else None)
        return nxt

    def _record(self, nxt: datetime | None, error: str | None) -> None:
        """Health for other processes (`crisis scheduler status`, HTTP); never fatal to firing. Written at most
        every STATUS_EVERY seconds (and at once on an error or its end): when steps fall due every few
        milliseconds, a status write per cycle would hold the write lock that delivery needs to mark."""
        moment = time.monotonic()
        if error is None and self._last_error is None and moment - self._recorded < STATUS_EVERY:
            return
        try:
            status.record_cycle(self.svc.engine, self.clock.now(), nxt, self.cycles, error)
            self._recorded, self._last_error = moment, error
        except Exception as exc:
            self.log.warning("scheduler_status_not_recorded", error=str(exc))


def make_scheduler() -> BackgroundScheduler:
    """APScheduler for periodic jobs only (in memory: nothing to persist, nothing re-armed from inside a run)."""
    return BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1}, timezone="UTC")


@contextlib.contextmanager
def leader_lock(engine: Engine) -> Iterator[None]:
    """Hold the one-scheduler-per-database lock for the block; raise AlreadyRunning if taken."""
    path = sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if engine.dialect.name == "sqlite":
        if path is None:
            yield  # in-memory database: nobody else can reach it
            return
        real = Path(os.path.realpath(path))  # a symlink to the file must meet the same lock
        with _file_lock(real.with_name(real.name + ".scheduler.lock")):
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


def check_sweep(seconds: float) -> None:
    if not (math.isfinite(seconds) and MIN_SWEEP <= seconds <= MAX_SWEEP):
        raise InputError(f"must be between {MIN_SWEEP:g} and {MAX_SWEEP:g} seconds, got {seconds:g}",
                         field="--sweep")


@contextlib.contextmanager
def background(svc: CrisisService, channels: Mapping[str, Channel], clock: Clock, *,
               sweep_seconds: float = 30.0, dispatcher: Dispatcher | None = None) -> Iterator[Runner]:
    """Run the scheduler in this process's background threads for the block (`crisis serve`, and `run`):
    the leader lock, the firing loop (its first cycle is the catch-up: a restart fires what came due while
    down), delivery and the periodic sweep. Signal handlers belong to whoever runs the foreground."""
    check_sweep(sweep_seconds)
    with leader_lock(svc.engine):
        deliverer = Deliverer(svc, channels, clock, dispatcher=dispatcher)
        runner = Runner(svc, clock, deliverer)
        status.record_start(svc.engine, clock.now(), sweep_seconds)
        runner.log.info("scheduler_started", db=str(svc.engine.url), sweep_seconds=sweep_seconds)
        periodic = make_scheduler()
        periodic.add_job(runner.request_wake, "interval", args=["sweep"], seconds=sweep_seconds, id=SWEEP_JOB)
        loop = threading.Thread(target=runner.serve, name="crisis-runner", daemon=True)
        runner.thread = loop
        try:
            deliverer.start()
            loop.start()
            periodic.start()
            yield runner
        finally:
            if periodic.running:
                periodic.shutdown(wait=True)
            runner.stop()
            loop.join(timeout=60)
            deliverer.stop()
            if runner.fatal is None:  # (never write to a database that is not ours any more)
                with contextlib.suppress(Exception):
                    status.record_stop(svc.engine, clock.now(), "stopped")
            runner.log.info("scheduler_stopped", fatal=runner.fatal)


def run(settings: Settings, *, sweep_seconds: float = 30.0, clock: Clock | None = None) -> None:
    """Run until SIGTERM/SIGINT. Catches up first, so a restart fires what came due while down."""
    check_sweep(sweep_seconds)
    logs.configure(settings.log_path)
    clock = clock or SystemClock()
    svc = build_service(settings, clock)
    stopping = threading.Event()
    received: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)  # no I/O here: the main thread may be mid-write
        stopping.set()  # safe at any moment, even before the loop has started

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    channels = build_channels(settings)
    with background(svc, channels, clock, sweep_seconds=sweep_seconds,
                    dispatcher=build_dispatcher(settings, svc, channels, clock)) as runner:
        while not stopping.wait(1.0) and runner.thread is not None and runner.thread.is_alive():
            pass
        runner.log.info("scheduler_stopping", signal=received[0] if received else None)
    if runner.fatal:
        raise DatabaseChanged(runner.fatal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crisis.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=float, default=30.0, help="safety-net sweep interval in seconds")
    args = parser.parse_args(argv)
    try:
        run(load_settings(), sweep_seconds=args.sweep)
    except CrisisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
