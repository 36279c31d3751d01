"""On-call commands: who is on call, overrides (swaps, holidays), imported shifts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from crisis.engine import policy
from crisis.errors import InputError
from crisis.principal import Principal
from crisis.rota import OnCall, Shift
from crisis.service.base import ServiceBase
from crisis.store.db import read_session

if TYPE_CHECKING:
    from crisis.store.models import OnCallShift


class OnCallCommands(ServiceBase):
    def on_call(self, now: datetime | None = None) -> OnCall:
        now = self._now(now)
        with read_session(self.engine) as s:
            return self._on_call(s, now)

    def add_shifts(self, shifts: Sequence[Shift], *, principal: Principal, note: str | None = None,
                   now: datetime | None = None) -> list[OnCallShift]:
        """Store overrides or imported shifts; each beats the rota while it covers a moment. Leadership, the
        duty officer or anyone on the rota may arrange cover."""
        from crisis.store.models import OnCallShift

        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        policy.enforce(policy.may_arrange_on_call(who))
        rows = []
        for sh in shifts:
            self.roster.person(sh.person)
            if sh.until <= sh.start:
                raise InputError("a shift must end after it starts", field="until")
            rows.append(OnCallShift(person=sh.person, start=sh.start, until=sh.until, source=sh.source, note=note,
                                    created_at=now, created_by=actor))
        with self._write(who) as (s, tx):
            s.add_all(rows)
            s.flush()
            for r in rows:
                self._event(s, tx, at=now, actor=actor, kind=f"on_call_{r.source}", incident_id=None,
                            person=r.person, start=r.start.isoformat(), until=r.until.isoformat(), shift=r.id)
        return rows

    def shifts(self, *, since: datetime | None = None) -> list[OnCallShift]:
        from sqlmodel import col, select

        from crisis.store.models import OnCallShift

        with read_session(self.engine) as s:
            stmt = select(OnCallShift).order_by(col(OnCallShift.start), col(OnCallShift.id))
            if since is not None:
                stmt = stmt.where(col(OnCallShift.until) > since)
            return list(s.exec(stmt).all())
