"""Transactional outbox: messages are rows written with the change that caused them.

The service queues a message *kind* and its facts, never text: text is rendered at delivery (per channel
and the recipient's language, crisis.notify.messages). Rows go to the deployment's record channels (log,
file) and to the first of the recipient's own channels; the others wait in `payload["_then"]` and take over
if that one fails for good (crisis.notify.dispatch).

Delivery is at-least-once from the outbox; each message carries a `dedupe_key` and every channel is
idempotent on it (file: an index of keys written; SMTP: the Message-ID; webhooks: an Idempotency-Key
header), so a recipient sees each notification once even if the process dies between delivering and
marking the row delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from crisis.notify.rules import hold_until, is_urgent, personal_route
from crisis.roster import Roster

if TYPE_CHECKING:  # the ORM and the models load only in `pending`: building rows needs neither
    from sqlmodel import Session

    from crisis.store.models import OutboxMessage

DEFAULT_CHANNELS: tuple[str, ...] = ("log", "file")


@dataclass(frozen=True)
class Routing:
    """What the service needs to queue messages: record channels, configured personal channels, the zone."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    personal: frozenset[str] = frozenset()
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))


def row(*, key: str, channel: str, kind: str, recipient: str, incident_id: int | None, facts: dict[str, Any],
        now: datetime, urgent: bool, held: datetime | None) -> dict[str, Any]:
    return {"dedupe_key": key, "channel": channel, "kind": kind, "recipient": recipient, "urgent": urgent,
            "incident_id": incident_id, "subject": "", "body": "", "payload": facts, "created_at": now,
            "next_attempt_at": held or now, "held_until": held, "attempts": 0}


def messages(*, kind: str, key: str, recipient: str, incident_id: int | None, facts: dict[str, Any],
             now: datetime, roster: Roster, routing: Routing) -> list[dict[str, Any]]:
    """Outbox rows for one message, to insert with the command that caused it. Keys derive from unique facts
    (task id and escalation level, ...); the unique constraint turns an impossible duplicate into a
    rolled-back command, never a double page."""
    severity = facts.get("severity")
    urgent = is_urgent(kind, severity)  # (an urgent message is never held: no quiet hours to look up)
    held = None if urgent else hold_until(now, kind=kind, severity=severity, quiet=roster.quiet_hours_of(recipient),
                                          tz=routing.tz)
    facts = {"type": kind, **facts}
    out = [row(key=f"{key}:{ch}", channel=ch, kind=kind, recipient=recipient, incident_id=incident_id,
               facts=facts, now=now, urgent=urgent, held=held) for ch in routing.channels]
    if not routing.personal:  # no personal channel configured: nobody has a route (personal_route keeps none)
        return out
    preferred = next((p.channels for p in roster.people if p.id == recipient), [])
    route = personal_route(list(preferred), routing.personal)
    if route:
        out.append(row(key=f"{key}:{route[0]}", channel=route[0], kind=kind, recipient=recipient,
                       incident_id=incident_id, facts={**facts, "_then": route[1:]}, now=now, urgent=urgent,
                       held=held))
    return out


def pending(s: Session, limit: int = 500, max_attempts: int = 10) -> list[OutboxMessage]:
    """Undelivered, not failed messages, oldest first (row-locked on PostgreSQL: concurrent readers split)."""
    from sqlmodel import col, select

    from crisis.store.models import OutboxMessage

    return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.delivered_at).is_(None),
                                                   col(OutboxMessage.failed_at).is_(None),
                                                   col(OutboxMessage.attempts) < max_attempts)
                       .order_by(col(OutboxMessage.id)).limit(limit)
                       .with_for_update(skip_locked=True)).all())
