"""Idempotency keys of inbound requests: the first request claims its key, later ones with the same key get
the stored answer and change nothing. The claim is a primary-key insert, so two concurrent copies of one
request cannot both run; a claim whose request failed is released so the client may retry, and one left
unanswered by a crashed process is given up after a few minutes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from crisis.errors import Conflict
from crisis.store.auth_models import IdempotencyKey
from crisis.store.db import write_session

ABANDONED = timedelta(minutes=5)  # a claim this old without an answer was left by a crashed process


@dataclass(frozen=True)
class Stored:
    status_code: int
    response: dict[str, Any]


def claim(engine: Engine, key: str, request_hash: str, now: datetime) -> Stored | None:
    """Claim `key` for this request (None: go ahead) or return the answer already given to it."""
    try:
        with write_session(engine) as s:
            s.add(IdempotencyKey(key=key, request_hash=request_hash, created_at=now))
        return None
    except IntegrityError:
        pass
    with write_session(engine) as s:
        row = s.get(IdempotencyKey, key)
    if row is None:  # released meanwhile: the earlier attempt failed
        return claim(engine, key, request_hash, now)
    if row.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was already used for a different request body")
    if row.status_code is None and now - row.created_at > ABANDONED:  # its process died mid-request
        release(engine, key)
        return claim(engine, key, request_hash, now)
    if row.status_code is None or row.response is None:
        raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly")
    return Stored(row.status_code, row.response)


def complete(engine: Engine, key: str, status_code: int, response: dict[str, Any], incident_id: int | None) -> None:
    with write_session(engine) as s:
        row = s.get(IdempotencyKey, key)
        assert row is not None, key
        row.status_code, row.response, row.incident_id = status_code, response, incident_id
        s.add(row)


def release(engine: Engine, key: str) -> None:
    with write_session(engine) as s:
        row = s.get(IdempotencyKey, key)
        if row is not None and row.status_code is None:
            s.delete(row)
