"""Transactional outbox: messages are rows written with the change that caused them.

Delivery is at-least-once from the outbox; each message carries a `dedupe_key` and every
channel must be idempotent on it (file: skips keys already written; webhooks/SMTP: send it
as an idempotency key / Message-ID), so a recipient sees each notification exactly once even
if the process dies between delivering and marking the row delivered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from crisis.store.models import OutboxMessage

DEFAULT_CHANNELS: tuple[str, ...] = ("log", "file")


def enqueue(s: Session, *, channels: tuple[str, ...], key: str, recipient: str, incident_id: int | None,
            subject: str, body: str, now: datetime, payload: dict[str, Any]) -> None:
    for channel in channels:
        dedupe = f"{key}:{channel}"
        if s.exec(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe)).first() is not None:
            continue
        s.add(OutboxMessage(dedupe_key=dedupe, channel=channel, recipient=recipient, incident_id=incident_id,
                            subject=subject, body=body, payload=payload, created_at=now))


def pending(s: Session, limit: int = 500) -> list[OutboxMessage]:
    return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.delivered_at).is_(None))
                       .order_by(col(OutboxMessage.id)).limit(limit)).all())
