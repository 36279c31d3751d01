"""Reads: incidents, tasks, escalations, timeline, statements, outbox."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, func, select

from crisis.engine.fsm import FINAL
from crisis.service.base import ServiceBase
from crisis.store.db import read_session
from crisis.store.models import Escalation, Event, Incident, OutboxMessage, Statement, Task


class Queries(ServiceBase):
    def incidents(self, *, include_final: bool = True, limit: int | None = None, offset: int = 0) -> list[Incident]:
        """Incidents oldest first; `limit`/`offset` page in SQL (the API's lists)."""
        with read_session(self.engine) as s:
            stmt = select(Incident).order_by(col(Incident.id))
            if not include_final:
                stmt = stmt.where(col(Incident.stage).not_in(FINAL))
            if limit is not None:
                stmt = stmt.limit(limit).offset(offset)
            return list(s.exec(stmt).all())

    def count_incidents(self, *, include_final: bool = True) -> int:
        with read_session(self.engine) as s:
            stmt = select(func.count()).select_from(Incident)
            if not include_final:
                stmt = stmt.where(col(Incident.stage).not_in(FINAL))
            return int(s.exec(stmt).one())

    def incident(self, incident_id: int) -> Incident:
        with read_session(self.engine) as s:
            return self._incident(s, incident_id)

    def tasks(self, incident_id: int) -> list[Task]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Task).where(Task.incident_id == incident_id)
                               .order_by(col(Task.id))).all())

    def escalations(self, incident_id: int | None = None, *, unacked_only: bool = False) -> list[Escalation]:
        with read_session(self.engine) as s:
            stmt = select(Escalation).order_by(col(Escalation.fired_at), col(Escalation.id))
            if incident_id is not None:
                stmt = stmt.where(Escalation.incident_id == incident_id)
            if unacked_only:
                stmt = stmt.join(Task, col(Task.id) == Escalation.task_id).where(
                    Task.status == "open", col(Task.acked_at).is_(None))
            return list(s.exec(stmt).all())

    def timeline(self, incident_id: int) -> list[Event]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Event).where(Event.incident_id == incident_id)
                               .order_by(col(Event.at), col(Event.id))).all())

    def statements(self, incident_id: int) -> list[Statement]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Statement).where(Statement.incident_id == incident_id)
                               .order_by(col(Statement.id))).all())

    def next_deadlines(self, incident_ids: list[int] | None = None) -> dict[int, datetime]:
        """Per incident (all, or those listed), the earliest due time among its open tasks."""
        with read_session(self.engine) as s:
            stmt = select(Task.incident_id, func.min(Task.due_at)).where(
                Task.status == "open", col(Task.due_at).is_not(None)).group_by(Task.incident_id)
            if incident_ids is not None:
                stmt = stmt.where(col(Task.incident_id).in_(incident_ids))
            rows = s.exec(stmt).all()
        return {iid: due for iid, due in rows if due is not None}  # min() keeps the column's UTC type

    def outbox(self, *, undelivered_only: bool = False) -> list[OutboxMessage]:
        with read_session(self.engine) as s:
            stmt = select(OutboxMessage).order_by(col(OutboxMessage.id))
            if undelivered_only:
                stmt = stmt.where(col(OutboxMessage.delivered_at).is_(None))
            return list(s.exec(stmt).all())


