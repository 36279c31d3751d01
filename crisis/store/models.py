"""Tables. Deadlines and escalation state live here, so nothing depends on an in-memory timer.

The accounts' tables (accounts, sessions, tokens, throttle, idempotency keys) are in crisis.store.auth_models,
imported by what uses them (crisis.accounts, the HTTP layer) and by the migrations' env.py, which needs the
whole schema: not from here, so a write command does not build their five SQLModel classes (~70 M
instructions, 2.6 % of `crisis open`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from crisis.store.types import UTCDateTime


def _ts(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


class Incident(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str
    category: str = Field(index=True)
    source_url: str | None = None
    signals: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stage: str = Field(index=True)
    severity: str
    decision: str | None = None
    cycle: int = 1
    opened_by: str
    opened_at: datetime = _ts(nullable=False)
    stage_entered_at: datetime = _ts(nullable=False)
    closed_at: datetime | None = _ts()
    playbook_version: str = ""
    version: int = 0
    cycle_started_at: datetime | None = _ts()  # the last reopen; None in the first cycle (= opened_at)

    @property
    def cycle_anchor(self) -> datetime:
        """Where the current cycle's clocks run from: the opening, or the reopen after a flare-up."""
        return self.cycle_started_at or self.opened_at


_OPEN = "status = 'open'"
_STEP = _OPEN + " AND next_escalation_at IS NOT NULL"
# The partial indexes below name their predicate for SQLite only. The migrations make them partial on PostgreSQL
# too (0005, 0007: the schema is built by the migrations, never from these classes, and Alembic's comparison of
# the two does not look at predicates); naming `postgresql_where` here made SQLAlchemy import its whole
# PostgreSQL dialect (asyncpg, psycopg, pg8000 modules...) to check the keyword whenever this module loads:
# ~120 M instructions, 5 % of `crisis open` on a SQLite deployment.


class Task(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("incident_id", "cycle", "stage", "key", name="uq_task_stage_key"),
        # partial (migration 0007): only open tasks are indexed, so a task that ends leaves the index
        Index("ix_task_next_step", "status", "next_escalation_at",
              sqlite_where=text(_STEP)),  # the escalation clock: next due step first
        Index("ix_task_open_due", "status", "due_at",
              sqlite_where=text(_OPEN)),  # pending escalations, most overdue first; a person's open tasks
    )
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")  # indexed by uq_task_stage_key, which leads with it
    cycle: int = 1
    stage: str
    key: str
    group: str
    title_zh: str
    title_en: str
    required: bool = True
    assignee: str
    anchor: str = "stage"
    created_at: datetime = _ts(nullable=False)
    due_at: datetime | None = _ts()
    status: str = "open"  # open | done | waived | cancelled
    done_at: datetime | None = _ts()
    done_by: str | None = None
    note: str | None = None
    escalation_plan: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    escalation_level: int = 0  # steps fired so far
    next_escalation_at: datetime | None = _ts()
    acked_at: datetime | None = _ts()
    acked_by: str | None = None


class Escalation(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("task_id", "level", name="uq_escalation_step"),
                      Index("ix_escalation_fired", "fired_at", "id"))  # escalations, newest first
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id")  # indexed by uq_escalation_step, which leads with it
    incident_id: int = Field(foreign_key="incident.id", index=True)
    level: int
    target: str
    recipient: str
    scheduled_at: datetime = _ts(nullable=False)
    fired_at: datetime = _ts(nullable=False)
    late_seconds: float = 0.0
    acked_at: datetime | None = _ts()
    acked_by: str | None = None


class Event(SQLModel, table=True):
    """Append-only audit timeline (updates and deletes are refused, see store.db)."""

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    at: datetime = _ts(nullable=False)
    actor: str
    auth: str | None = None  # how the actor authenticated (crisis.principal.AuthMethod); None: the engine
    kind: str
    from_state: str | None = None
    to_state: str | None = None
    task_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Statement(SQLModel, table=True):
    """A public statement and where it stands in the three-level release review."""

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    title: str
    body: str
    channel: str = "official_account"
    major: bool = True
    status: str = "draft"  # draft | in_review | approved | rejected | released
    drafted_by: str
    drafted_at: datetime = _ts(nullable=False)
    released_at: datetime | None = _ts()
    released_by: str | None = None
    next_update: str | None = None
    reviews: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


_TO_SEND = "delivered_at IS NULL AND failed_at IS NULL"


class OutboxMessage(SQLModel, table=True):
    """A notification to deliver; written in the same transaction as what caused it.

    The service queues a *kind* and its facts (`payload`); the text is rendered at delivery, per channel and
    the recipient's language (crisis.notify.messages), and `subject` records what was sent. Delivery claims a
    row for a lease (`claimed_until`), sends outside any write transaction, then marks it: delivered, retried
    at `next_attempt_at` (exponential back-off), or `failed_at` after the last attempt. `held_until` marks a
    non-urgent message held for the recipient's quiet hours (delivered in one digest when they end)."""

    __table_args__ = (Index("ix_outbox_due", "delivered_at", "failed_at", "next_attempt_at"),
                      # what delivery claims (crisis.notify.dispatch): only rows still to deliver are indexed, in
                      # claim order, so a claim reads its batch off the index however long the history
                      Index("ix_outbox_claim", "channel", "urgent", "next_attempt_at", "id",
                            sqlite_where=text(_TO_SEND + " AND held_until IS NULL")),
                      Index("ix_outbox_held", "channel", "id", sqlite_where=text(_TO_SEND + " AND held_until IS NOT NULL")))
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True)
    channel: str
    recipient: str
    kind: str = ""
    urgent: bool = False
    incident_id: int | None = None
    subject: str = ""
    body: str = ""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(nullable=False)
    next_attempt_at: datetime | None = _ts()
    held_until: datetime | None = _ts()
    claimed_until: datetime | None = _ts()
    delivered_at: datetime | None = _ts()  # indexed by ix_outbox_due, which leads with it
    failed_at: datetime | None = _ts()
    attempts: int = 0
    last_error: str | None = None
    receipt: str | None = None


class OnCallShift(SQLModel, table=True):
    """An on-call window that beats the rota: an override (swap, holiday) or an imported shift."""

    id: int | None = Field(default=None, primary_key=True)
    person: str
    start: datetime = _ts(nullable=False, index=True)
    until: datetime = _ts(nullable=False, index=True)
    source: str = "override"  # override | import
    note: str | None = None
    created_at: datetime = _ts(nullable=False)
    created_by: str = ""


class SchedulerStatus(SQLModel, table=True):
    """The running scheduler's health, one row per database, written every cycle so other processes (the
    CLI's `crisis scheduler status`, the HTTP health endpoint) can see whether deadlines are being fired.
    (Added by migration 0003.)"""

    __tablename__ = "scheduler_status"
    id: int = Field(default=1, primary_key=True)
    pid: int
    host: str
    started_at: datetime = _ts(nullable=False)
    sweep_seconds: float
    last_cycle_at: datetime | None = _ts()
    next_wake_at: datetime | None = _ts()
    pending: int = 0  # open tasks with an escalation step still to fire
    cycles: int = 0
    last_error: str | None = None
    stopped_at: datetime | None = _ts()
    stop_reason: str | None = None

