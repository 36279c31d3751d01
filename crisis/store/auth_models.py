"""Tables for who may sign in and how: password accounts, login sessions, API tokens, login throttling,
and the idempotency keys of inbound signals. Secrets are never stored: only argon2 hashes (passwords)
or SHA-256 digests (random session and API tokens, which carry 256 bits and need no slow hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from crisis.store.types import UTCDateTime


def _ts(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


class Account(SQLModel, table=True):
    """A roster person's password login (absent: the person cannot sign in)."""

    person_id: str = Field(primary_key=True)
    password_hash: str
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class LoginSession(SQLModel, table=True):
    """A signed-in browser: the cookie carries the token, the row its digest and its CSRF secret."""

    token_hash: str = Field(primary_key=True)
    person_id: str = Field(index=True)
    csrf_token: str
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = _ts(nullable=False)
    last_seen_at: datetime = _ts(nullable=False)
    revoked_at: datetime | None = _ts()
    client: str | None = None


class ApiToken(SQLModel, table=True):
    """A bearer token for an integration, acting as `person_id` within its scopes."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    token_hash: str = Field(unique=True)
    prefix: str
    person_id: str
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str
    created_at: datetime = _ts(nullable=False)
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per key ("person:ID" or "client:ADDRESS"): slowed, then locked for a while."""

    key: str = Field(primary_key=True)
    failures: int = 0
    last_failure_at: datetime = _ts(nullable=False)
    locked_until: datetime | None = _ts()


class IdempotencyKey(SQLModel, table=True):
    """An inbound request already handled (or being handled): a replay gets the stored answer."""

    key: str = Field(primary_key=True)  # credential + ":" + the client's Idempotency-Key
    request_hash: str
    status_code: int | None = None  # None while the first request is in progress
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    incident_id: int | None = None
    created_at: datetime = _ts(nullable=False)
