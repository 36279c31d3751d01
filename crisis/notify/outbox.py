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


def messages(*, channels: tuple[str, ...], key: str, recipient: str, incident_id: int | None, subject: str,
             body: str, now: datetime, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Outbox rows, one per channel, to insert with the command that caused them. Keys derive from unique
    facts (task id and escalation level, ...); the unique constraint turns an impossible duplicate into a
    rolled-back command, never a double page."""
    return [{"dedupe_key": f"{key}:{channel}", "channel": channel, "recipient": recipient,
             "incident_id": incident_id, "subject": subject, "body": body, "payload": payload, "created_at": now,
             "attempts": 0} for channel in channels]


def pending(s: Session, limit: int = 500, max_attempts: int = 10) -> list[OutboxMessage]:
    """Undelivered messages still worth trying, oldest first."""
    return list(s.exec(select(OutboxMessage).where(col(OutboxMessage.delivered_at).is_(None),
                                                   col(OutboxMessage.attempts) < max_attempts)
                       .order_by(col(OutboxMessage.id)).limit(limit)
                       .with_for_update(skip_locked=True)).all())  # PostgreSQL: concurrent dispatchers
                                                                   # split the rows; SQLite: BEGIN IMMEDIATE
