"""Read models for the pages: a fixed number of queries per page, never one per incident.

These only read (one read-only session each); every change goes through the service and its policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from crisis.engine.fsm import FINAL
from crisis.store.db import read_session
from crisis.store.models import Escalation, Incident, OutboxMessage, Task

BOARD_LIMIT = 200


@dataclass
class BoardRow:
    incident: Incident
    next_due: datetime | None = None
    overdue: int = 0
    open_tasks: int = 0
    unacked: int = 0


@dataclass
class Board:
    rows: list[BoardRow]
    total: int
    failed_notifications: list[OutboxMessage] = field(default_factory=list)


def board(engine: Engine, now: datetime, *, view: str = "open", stage: str | None = None,
          category: str | None = None, limit: int = BOARD_LIMIT) -> Board:
    """Open (or watch-listed, or closed) incidents newest first with their task and escalation counts:
    four queries whatever the number of incidents."""
    with read_session(engine) as s:
        stmt = select(Incident)
        if view == "watch":
            stmt = stmt.where(Incident.stage == "watch")
        elif view == "closed":
            stmt = stmt.where(col(Incident.stage).in_(FINAL))
        else:
            stmt = stmt.where(col(Incident.stage).not_in((*FINAL, "watch")))
        if stage:
            stmt = stmt.where(Incident.stage == stage)
        if category:
            stmt = stmt.where(Incident.category == category)
        total = s.exec(select(func.count()).select_from(stmt.subquery())).one()
        incidents = list(s.exec(stmt.order_by(col(Incident.id).desc()).limit(limit)).all())
        ids = [i.id for i in incidents]
        rows = {i.id: BoardRow(i) for i in incidents}
        if ids:
            overdue = func.sum(case((col(Task.due_at) < now, 1), else_=0))
            tq = select(Task.incident_id, func.min(Task.due_at), func.count(), overdue).where(
                Task.status == "open", col(Task.incident_id).in_(ids)).group_by(Task.incident_id)
            for iid, due, n, late in s.exec(tq).all():
                rows[iid].next_due, rows[iid].open_tasks, rows[iid].overdue = due, n, int(late or 0)
            eq = select(Escalation.incident_id, func.count()).join(Task, col(Task.id) == Escalation.task_id).where(
                Task.status == "open", col(Escalation.acked_at).is_(None), col(Escalation.incident_id).in_(ids)
            ).group_by(Escalation.incident_id)
            for iid, n in s.exec(eq).all():
                rows[iid].unacked = n
        failed = list(s.exec(select(OutboxMessage).where(col(OutboxMessage.failed_at).is_not(None))
                             .order_by(col(OutboxMessage.id).desc()).limit(10)).all())
    return Board([rows[i] for i in ids], total, failed)


@dataclass
class MyWork:
    tasks: list[Task]
    escalations: list[Escalation]
    titles: dict[int, str]


def my_work(engine: Engine, person: str) -> MyWork:
    """The person's open tasks and the pending escalations paged to them, newest first."""
    with read_session(engine) as s:
        tasks = list(s.exec(select(Task).where(Task.assignee == person, Task.status == "open")
                            .order_by(col(Task.created_at).desc(), col(Task.id).desc())).all())
        escs = list(s.exec(select(Escalation).join(Task, col(Task.id) == Escalation.task_id).where(
            Escalation.recipient == person, Task.status == "open", col(Escalation.acked_at).is_(None))
            .order_by(col(Escalation.fired_at).desc())).all())
        ids = {t.incident_id for t in tasks} | {e.incident_id for e in escs}
        titles = dict(s.exec(select(Incident.id, Incident.title).where(col(Incident.id).in_(ids))).all()) if ids else {}
    return MyWork(tasks, escs, titles)  # type: ignore[arg-type]


def escalation_with_task(engine: Engine, escalation_id: int) -> tuple[Escalation, Task, Incident, list[Escalation]]:
    """An escalation, its task and incident, and every escalation of that task (who was paged before)."""
    from crisis.errors import NotFound

    with read_session(engine) as s:
        esc = s.get(Escalation, escalation_id)
        if esc is None:
            raise NotFound(f"escalation {escalation_id}")
        task, inc = s.get(Task, esc.task_id), s.get(Incident, esc.incident_id)
        chain = list(s.exec(select(Escalation).where(Escalation.task_id == esc.task_id)
                            .order_by(col(Escalation.level))).all())
    assert task is not None and inc is not None
    return esc, task, inc, chain
