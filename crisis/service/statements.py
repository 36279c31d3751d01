"""Public statements: draft, three-level review, release."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import func, select

from crisis.engine.fsm import FINAL
from crisis.errors import CrisisError, Forbidden, InputError
from crisis.service.base import ServiceBase
from crisis.severity import Severity
from crisis.statements import lint_statement, required_levels, reviewer_qualifies
from crisis.store.models import Statement


class StatementCommands(ServiceBase):
    def draft_statement(self, incident_id: int, *, title: str, body: str, actor: str, major: bool | None = None,
                        next_update: str | None = None, channel: str = "official_account",
                        now: datetime | None = None) -> Statement:
        now = self._now(now)
        actor = self._actor(actor)
        if not title.strip() or not body.strip():
            raise InputError("a statement needs a title and a body")
        with self._write() as (s, tx):
            inc = self._incident(s, incident_id, lock=True)
            if inc.stage in FINAL:
                raise CrisisError(f"incident #{inc.id} is {inc.stage}")
            is_major = major if major is not None else Severity(inc.severity).rank <= 2
            st = Statement(incident_id=inc.id, title=title.strip(), body=body.strip(), major=is_major,
                           channel=channel, drafted_by=actor, drafted_at=now, next_update=next_update,
                           status="in_review")
            s.add(st)
            s.flush()
            self._event(s, tx, at=now, actor=actor, kind="statement_drafted", incident_id=inc.id,
                        statement=st.id, title=st.title, major=is_major,
                        warnings=lint_statement(st.title, st.body, next_update))
        return st

    def review_statement(self, statement_id: int, *, actor: str, approve: bool, comment: str | None = None,
                         now: datetime | None = None) -> Statement:
        now = self._now(now)
        actor = self._actor(actor)
        with self._write() as (s, tx):
            st = self._statement_locked(s, statement_id)
            if st.status != "in_review":
                raise CrisisError(f"statement #{st.id} is {st.status}, not in review")
            levels = required_levels(st.major)
            level = len(st.reviews) + 1
            if not reviewer_qualifies(self.roster, actor, level):
                raise Forbidden(f"{actor} may not review at level {level} ({levels[level - 1]})")
            if any(r["by"] == actor for r in st.reviews):
                raise Forbidden(f"{actor} already reviewed statement #{st.id}; each level needs another person")
            st.reviews = [*st.reviews, {"level": level, "by": actor, "approve": approve, "at": now.isoformat(),
                                        "comment": comment}]
            if not approve:
                st.status = "rejected"
            elif level == len(levels):
                st.status = "approved"
            s.add(st)
            self._event(s, tx, at=now, actor=actor, kind="statement_reviewed", incident_id=st.incident_id,
                        statement=st.id, level=level, approve=approve, comment=comment, status=st.status)
        return st

    def release_statement(self, statement_id: int, *, actor: str, now: datetime | None = None) -> Statement:
        now = self._now(now)
        actor = self._actor(actor)
        with self._write() as (s, tx):
            st = self._statement_locked(s, statement_id)
            if st.status != "approved":
                done = sum(1 for r in st.reviews if r["approve"])
                need = len(required_levels(st.major))
                raise CrisisError(f"statement #{st.id} is {st.status} ({done}/{need} review levels approved); "
                                  "only an approved statement can be released")
            first = s.exec(select(func.count()).select_from(Statement).where(
                Statement.incident_id == st.incident_id, Statement.status == "released")).one() == 0
            st.status, st.released_at, st.released_by = "released", now, actor
            s.add(st)
            self._event(s, tx, at=now, actor=actor, kind="statement_released", incident_id=st.incident_id,
                        statement=st.id, title=st.title, first=first, next_update=st.next_update)
        return st

