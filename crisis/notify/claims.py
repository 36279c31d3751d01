"""Claiming outbox rows for delivery: which rows are due, in what order, and the lease that keeps another
dispatcher (or this one's next round) from taking them while they are delivered.

A due row is neither delivered nor failed, its next attempt has come and no live lease holds it. Held rows
(quiet hours) are claimed per channel all together, so a recipient's digest is whole; the others urgent first,
each read off ix_outbox_claim in order. On PostgreSQL the reads skip rows another dispatcher has locked, so
concurrent dispatchers claim disjoint rows (tests/test_postgres.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection, Engine

from crisis.store.prepared import Prepared
from crisis.store.tables import OUTBOXMESSAGE as T

Row = Mapping[str, Any]  # an outbox row as claimed (a RowMapping, or claim_all's copy with the attempt counted)

# The statements, built once with bound parameters: rebuilding them every round was ~a fifth of a drill replay's
# CPU (SQLAlchemy caches the compiled SQL, not the construction of the expression).
_NOW = bindparam("b_now", type_=T.c.next_attempt_at.type)
_DUE = and_(T.c.delivered_at.is_(None), T.c.failed_at.is_(None),
            or_(T.c.next_attempt_at.is_(None), T.c.next_attempt_at <= _NOW),
            or_(T.c.claimed_until.is_(None), T.c.claimed_until <= _NOW))
_LIMIT = bindparam("b_limit", type_=Integer)
_OF_CHANNEL = and_(T.c.channel == bindparam("b_channel"), _DUE)
_HELD = (select(T.c.id).where(_OF_CHANNEL, T.c.held_until.is_not(None)).order_by(T.c.id).limit(_LIMIT)
         .with_for_update(skip_locked=True))
_DUE_URGENT, _DUE_OTHER = (select(T.c.id).where(_OF_CHANNEL, T.c.held_until.is_(None), T.c.urgent == urgent)
                           .order_by(T.c.next_attempt_at, T.c.id).limit(_LIMIT).with_for_update(skip_locked=True)
                           for urgent in (True, False))
_LEASE = (update(T).where(T.c.id.in_(bindparam("b_ids", expanding=True)))
          .values(claimed_until=bindparam("b_until", type_=T.c.claimed_until.type), attempts=T.c.attempts + 1)
          .returning(*T.c))
# Run on the cursor (crisis.store.prepared): SQLAlchemy's per-execute path cost more than the statement.
_ALL_DUE = Prepared(select(T).where(_OF_CHANNEL).order_by(T.c.id).limit(_LIMIT).with_for_update(skip_locked=True))
_ANY_DUE = select(T.c.id).where(T.c.channel.in_(bindparam("b_channels", expanding=True)), _DUE).limit(1)


def claim(conn: Connection, channel: str, now: datetime, room: int, held_cap: int, lease: float) -> list[Row]:
    """Lease up to `room` due rows of one channel (and up to `held_cap` due held rows of it, for whole digests)
    for `lease` seconds, the attempt counted; by id."""
    ids = list(conn.execute(_HELD, {"b_channel": channel, "b_now": now, "b_limit": held_cap}).scalars())
    due: list[int] = []
    for stmt in (_DUE_URGENT, _DUE_OTHER):  # urgent first, each read off the index in order (ix_outbox_claim)
        if len(due) < room:
            due += conn.execute(stmt, {"b_channel": channel, "b_now": now, "b_limit": room - len(due)}).scalars()
    return _lease(conn, ids + due, now, lease)


def claim_all(conn: Connection, channel: str, now: datetime, room: int, held_cap: int,
              lease: float) -> tuple[list[Row], bool]:
    """`claim` for `Dispatcher.drain_inline` by one read when every due row fits in it (what a drill's rounds
    have): the same rows in the same order, and whether they were all (no further round needed). Not leased:
    they are delivered and marked before this transaction ends, the attempt counted by the marks."""
    names = _ALL_DUE.names(conn)
    found = [dict(zip(names, r, strict=True))
             for r in _ALL_DUE.rows(conn, {"b_channel": channel, "b_now": now, "b_limit": room + held_cap})]
    held = sum(1 for r in found if r["held_until"] is not None)
    if held >= held_cap or len(found) - held > room:
        return claim(conn, channel, now, room, held_cap, lease), False
    for r in found:
        r["attempts"] += 1
    return found, True


def _lease(conn: Connection, ids: list[int], now: datetime, lease: float) -> list[Row]:
    if not ids:
        return []
    until = now + timedelta(seconds=lease)
    claimed = conn.execute(_LEASE, {"b_ids": ids, "b_until": until}).mappings().all()
    return sorted(claimed, key=lambda r: r["id"])


def due_exists(engine: Engine, channels: list[str], now: datetime) -> bool:
    """Whether any row of these channels is due now."""
    with engine.connect() as conn:
        return conn.execute(_ANY_DUE, {"b_channels": channels, "b_now": now}).first() is not None
