"""On-call and notifications over HTTP: who is on call (and cover for swaps and holidays), and the outbox
(what was sent to whom, what is held for quiet hours, what failed and why)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from crisis.http.api import Reader, Writer, by, encode, service
from crisis.rota import Shift

router = APIRouter(tags=["on-call"])


class OverrideBody(BaseModel):
    person: str = Field(min_length=1, max_length=64, description="Who stands in (roster person id).")
    start: AwareDatetime
    until: AwareDatetime
    note: str | None = Field(default=None, max_length=500)


@router.get("/oncall")
def on_call(request: Request, _: Reader, at: AwareDatetime | None = None) -> dict[str, Any]:
    """Who is on call at `at` (default now), the backup, since/until when and why; shifts of the next 14 days."""
    svc = service(request)
    when = at or svc.clock.now()
    oc = svc.on_call(when)
    shifts = [s for s in svc.shifts(since=when) if s.start < when + timedelta(days=14)]
    return encode({"at": when, "primary": oc.primary, "backup": oc.backup, "since": oc.since, "until": oc.until,
                   "source": oc.source, "shifts": [{"id": s.id, "person": s.person, "start": s.start,
                                                     "until": s.until, "source": s.source, "note": s.note}
                                                    for s in shifts]})


@router.post("/oncall/overrides", status_code=201)
def override(body: OverrideBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Put someone on call for a window (a swap or holiday cover); it beats the rota while it lasts."""
    shift = Shift(body.person, _utc(body.start), _utc(body.until))
    (row,) = service(request).add_shifts([shift], note=body.note, **by(ident))
    return encode({"id": row.id, "person": row.person, "start": row.start, "until": row.until})


@router.get("/outbox", tags=["notifications"])
def outbox(request: Request, _: Reader, failed: bool = False, held: bool = False,
           limit: Annotated[int, Query(ge=1, le=10000)] = 50) -> dict[str, Any]:
    """Notifications: delivered, waiting, held for quiet hours, retrying, failed (and what the channel said)."""
    rows = service(request).outbox(failed=failed, held=held, limit=limit)
    return {"items": encode([{"id": m.id, "key": m.dedupe_key, "kind": m.kind, "to": m.recipient,
                              "channel": m.channel, "incident": m.incident_id, "created_at": m.created_at,
                              "delivered_at": m.delivered_at, "failed_at": m.failed_at, "held_until": m.held_until,
                              "next_attempt_at": m.next_attempt_at, "attempts": m.attempts,
                              "error": m.last_error, "receipt": m.receipt} for m in rows])}


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)
