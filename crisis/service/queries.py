"""Reads: incidents, tasks, escalations, timeline, statements, outbox."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from crisis import views
from crisis.engine.fsm import FINAL
from crisis.service.base import ServiceBase
from crisis.store import records
from crisis.store.db import read_session
from crisis.store.status import SchedulerHealth, read_health
from crisis.views import DEFAULT_PAGE, Page

if TYPE_CHECKING:  # the ORM and the models load in the reads that use them, not with the write commands
    from crisis.store.models import Escalation, Event, Incident, OutboxMessage, Statement, Task

__all__ = ["DEFAULT_PAGE", "Page", "Queries"]


class Queries(ServiceBase):
    def escalation_page(self, incident_id: int | None = None, *, pending: bool = False,
                        limit: int | None = DEFAULT_PAGE, offset: int = 0) -> Page[records.Escalation]:
        """Escalations, one page (crisis.views.escalation_page: the read every adapter shares)."""
        return views.escalation_page(self, incident_id, pending=pending, limit=limit, offset=offset)

    def incidents(self, *, include_final: bool = True) -> list[Incident]:
        from sqlmodel import col, select

        from crisis.store.models import Incident

        with read_session(self.engine) as s:
            stmt = select(Incident).order_by(col(Incident.id))
            if not include_final:
                stmt = stmt.where(col(Incident.stage).not_in(FINAL))
            return list(s.exec(stmt).all())

    def incident(self, incident_id: int) -> Incident:
        with read_session(self.engine) as s:
            return self._incident(s, incident_id)

    def tasks(self, incident_id: int) -> list[Task]:
        from sqlmodel import col, select

        from crisis.store.models import Task

        with read_session(self.engine) as s:
            return list(s.exec(select(Task).where(Task.incident_id == incident_id)
                               .order_by(col(Task.id))).all())

    def escalations(self, incident_id: int | None = None, *, pending: bool = False) -> list[Escalation]:
        """Escalations fired, oldest first. `pending`: those of tasks still open, acknowledged or not (an
        acknowledgement only holds the chain for a while, so an acknowledged overdue task stays listed)."""
        from sqlmodel import col, select

        from crisis.store.models import Escalation, Task

        with read_session(self.engine) as s:
            stmt = select(Escalation).order_by(col(Escalation.fired_at), col(Escalation.id))
            if incident_id is not None:
                stmt = stmt.where(Escalation.incident_id == incident_id)
            if pending:
                stmt = stmt.join(Task, col(Task.id) == Escalation.task_id).where(Task.status == "open")
            return list(s.exec(stmt).all())

    def timeline(self, incident_id: int) -> list[Event]:
        from sqlmodel import col, select

        from crisis.store.models import Event

        with read_session(self.engine) as s:
            return list(s.exec(select(Event).where(Event.incident_id == incident_id)
                               .order_by(col(Event.at), col(Event.id))).all())

    def statements(self, incident_id: int) -> list[Statement]:
        from sqlmodel import col, select

        from crisis.store.models import Statement

        with read_session(self.engine) as s:
            return list(s.exec(select(Statement).where(Statement.incident_id == incident_id)
                               .order_by(col(Statement.id))).all())

    def next_deadlines(self, incident_ids: Iterable[int] | None = None) -> dict[int, datetime]:
        """Per incident (all, or those given: one page's), the earliest due time among its open tasks."""
        from sqlmodel import col, func, select

        from crisis.store.models import Task

        with read_session(self.engine) as s:
            stmt = select(Task.incident_id, func.min(Task.due_at)).where(
                Task.status == "open", col(Task.due_at).is_not(None)).group_by(Task.incident_id)
            if incident_ids is not None:
                stmt = stmt.where(col(Task.incident_id).in_(list(incident_ids)))
            rows = s.exec(stmt).all()
        return {iid: due for iid, due in rows if due is not None}  # min() keeps the column's UTC type

    def outbox(self, *, undelivered_only: bool = False, failed: bool = False, held: bool = False,
               limit: int | None = None) -> list[OutboxMessage]:
        """Messages, oldest first; `failed`: given up on after the last attempt; `held`: waiting out the
        recipient's quiet hours."""
        from sqlmodel import col, select

        from crisis.store.models import OutboxMessage

        with read_session(self.engine) as s:
            stmt = select(OutboxMessage).order_by(col(OutboxMessage.id))
            if undelivered_only or held:
                stmt = stmt.where(col(OutboxMessage.delivered_at).is_(None))
            if failed:
                stmt = stmt.where(col(OutboxMessage.failed_at).is_not(None))
            if held:
                stmt = stmt.where(col(OutboxMessage.held_until).is_not(None), col(OutboxMessage.failed_at).is_(None))
            if limit:
                stmt = stmt.order_by(None).order_by(col(OutboxMessage.id).desc()).limit(limit)
                return list(reversed(s.exec(stmt).all()))
            return list(s.exec(stmt).all())

    def scheduler_health(self) -> SchedulerHealth:
        """Whether a scheduler is firing deadlines on this database (last cycle, next wake-up, pending)."""
        return read_health(self.engine, self.clock.now())
