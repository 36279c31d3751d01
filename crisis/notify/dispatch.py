"""Deliver pending outbox rows through their channels.

Rows are claimed and marked in batches: a crash mid-batch re-delivers at most that
batch, which idempotent channels (dedupe key) absorb.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Engine

from crisis.notify.channels import Channel
from crisis.notify.outbox import pending
from crisis.store.db import write_session

MAX_ATTEMPTS = 10
BATCH = 100


def dispatch(engine: Engine, channels: Mapping[str, Channel], now: datetime) -> int:
    """Deliver what is pending; returns how many were delivered. Failures are retried next time."""
    delivered = 0
    while True:
        before = delivered
        with write_session(engine) as s:
            batch = pending(s, limit=BATCH, max_attempts=MAX_ATTEMPTS)
            for msg in batch:
                channel = channels.get(msg.channel)
                msg.attempts += 1
                if channel is None:
                    msg.last_error = f"no channel '{msg.channel}' configured"
                    msg.attempts = MAX_ATTEMPTS  # nothing will deliver it; keep it visible, stop retrying
                else:
                    try:
                        channel.deliver(msg)
                    except Exception as exc:  # a channel failure must not stop the others
                        msg.last_error = f"{type(exc).__name__}: {exc}"
                    else:
                        msg.delivered_at = now
                        msg.last_error = None
                        delivered += 1
                s.add(msg)
        if len(batch) < BATCH or delivered == before:  # drained, or only failures left for next time
            return delivered
