"""Deliver pending outbox rows through their channels; one commit per message."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Engine

from crisis.notify.channels import Channel
from crisis.notify.outbox import pending
from crisis.store.db import write_session
from crisis.store.models import OutboxMessage

MAX_ATTEMPTS = 10


def dispatch(engine: Engine, channels: Mapping[str, Channel], now: datetime) -> int:
    """Deliver what is pending; returns how many were delivered. Failures are retried next time."""
    delivered = 0
    with write_session(engine) as s:
        ids = [m.id for m in pending(s) if m.attempts < MAX_ATTEMPTS]
    for mid in ids:
        with write_session(engine) as s:
            msg = s.get(OutboxMessage, mid)
            if msg is None or msg.delivered_at is not None:
                continue
            channel = channels.get(msg.channel)
            msg.attempts += 1
            if channel is None:
                msg.last_error = f"no channel '{msg.channel}' configured"
                s.add(msg)
                continue
            try:
                channel.deliver(msg)
            except Exception as exc:  # noqa: BLE001 - a channel failure must not stop the others
                msg.last_error = f"{type(exc).__name__}: {exc}"
            else:
                msg.delivered_at = now
                msg.last_error = None
                delivered += 1
            s.add(msg)
    return delivered
