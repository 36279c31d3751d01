"""The scheduler's health row: written by the scheduler every cycle, read by anyone (CLI, HTTP health).

Healthy means: a scheduler started, has not stopped, and finished a cycle recently. The runner cycles at
least once per sweep interval, so a last cycle older than two sweeps (plus a grace for a long catch-up)
means it is hung or was killed without a chance to say so (SIGKILL, power loss).
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from crisis.store.db import read_session, write_session
from crisis.store.tables import SCHEDULER_STATUS as S
from crisis.store.tables import TASK as T

if TYPE_CHECKING:
    from crisis.store.models import SchedulerStatus

STALE_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class SchedulerHealth:
    state: str  # running | stale | stopped | never_started
    pid: int | None = None
    host: str | None = None
    started_at: datetime | None = None
    last_cycle_at: datetime | None = None
    next_wake_at: datetime | None = None
    pending: int = 0  # open tasks with an escalation step still to fire (counted now, not at the last cycle)
    cycles: int = 0
    sweep_seconds: float | None = None
    last_error: str | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "running"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["healthy"] = self.healthy
        return {k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime) else v for k, v in d.items()}


def record_start(engine: Engine, now: datetime, sweep_seconds: float) -> None:
    """Claim the row for this process (the leader lock is held, so no other scheduler writes it)."""
    from crisis.store.models import SchedulerStatus

    row = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": now, "sweep_seconds": sweep_seconds,
           "last_cycle_at": None, "next_wake_at": None, "pending": 0, "cycles": 0, "last_error": None,
           "stopped_at": None, "stop_reason": None}
    with write_session(engine) as s:
        if s.execute(update(S).where(S.c.id == 1).values(**row)).rowcount == 0:  # type: ignore[attr-defined]
            s.add(SchedulerStatus(id=1, **row))


def record_cycle(engine: Engine, now: datetime, next_wake: datetime | None, cycles: int,
                 error: str | None = None) -> None:
    with write_session(engine) as s:
        pending = s.execute(select(func.count()).select_from(T).where(
            T.c.status == "open", T.c.next_escalation_at.is_not(None))).scalar_one()
        s.execute(update(S).where(S.c.id == 1, S.c.pid == os.getpid()).values(
            last_cycle_at=now, next_wake_at=next_wake, pending=pending, cycles=cycles, last_error=error))


def record_stop(engine: Engine, now: datetime, reason: str) -> None:
    with write_session(engine) as s:
        s.execute(update(S).where(S.c.id == 1, S.c.pid == os.getpid()).values(stopped_at=now,
                                                                              stop_reason=reason[:500]))


def read_health(engine: Engine, now: datetime) -> SchedulerHealth:
    """The scheduler's health as of `now` (a read transaction: never waits for the scheduler's writes)."""
    from crisis.store.models import SchedulerStatus

    with read_session(engine) as s:
        row = s.get(SchedulerStatus, 1)
        pending = s.execute(select(func.count()).select_from(T).where(
            T.c.status == "open", T.c.next_escalation_at.is_not(None))).scalar_one()
    if row is None:
        return SchedulerHealth(state="never_started", pending=pending)
    last = row.last_cycle_at or row.started_at
    if row.stopped_at is not None:
        state = "stopped"
    elif now - last > timedelta(seconds=2 * row.sweep_seconds) + STALE_GRACE:
        state = "stale"
    else:
        state = "running"
    return SchedulerHealth(state=state, pid=row.pid, host=row.host, started_at=row.started_at,
                           last_cycle_at=row.last_cycle_at, next_wake_at=row.next_wake_at, pending=pending,
                           cycles=row.cycles, sweep_seconds=row.sweep_seconds, last_error=row.last_error,
                           stopped_at=row.stopped_at, stop_reason=row.stop_reason)
