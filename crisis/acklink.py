"""One-tap acknowledgement links: an HMAC-signed token for (escalation id, person, expiry).

The notification carries `{public base URL}/ack/{token}`; the web page that consumes it calls `verify`, then
`refusal` with what the link points at now (the token is stateless, so once-only use and "the task is done"
are read from the database). Tokens expire 24 hours after the page by default.

A link whose escalation was superseded — the chain climbed to later levels because nobody answered — still
acknowledges while the chain is waiting: what an on-call administrator wants at 2 a.m. is that the first
responsible person who says "I am on it" stops the climb, whichever message they answer. Acknowledging holds
the task's whole chain (crisis.service.tasks) and tells everyone paged so far, the later levels included;
the page names who was paged since. Once someone has acknowledged and the chain is held, an older link would
acknowledge nothing, so it is refused with who acknowledged and when; if the hold ran out and the chain paged
again, an unused link acknowledges again (the chain is waiting once more).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crisis.errors import Forbidden

TTL = timedelta(hours=24)


@dataclass(frozen=True)
class AckClaim:
    escalation: int
    person: str
    expires: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, b"crisis-ack:" + body.encode("ascii"), hashlib.sha256).digest())


def sign(secret: bytes, escalation: int, person: str, now: datetime, ttl: timedelta = TTL) -> str:
    expires = int((now + ttl).timestamp())
    body = _b64(json.dumps([escalation, person, expires], separators=(",", ":")).encode("utf-8"))
    return f"{body}.{_mac(secret, body)}"


def verify(secret: bytes, token: str, now: datetime) -> AckClaim:
    """The claim a valid, unexpired token carries; Forbidden otherwise (no detail on which check failed)."""
    body, _, mac = token.partition(".")
    if not body or not mac or not hmac.compare_digest(mac, _mac(secret, body)):
        raise Forbidden("invalid acknowledgement link")
    try:
        escalation, person, expires = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise Forbidden("invalid acknowledgement link") from None
    until = datetime.fromtimestamp(int(expires), UTC)
    if now >= until:
        raise Forbidden("this acknowledgement link has expired")
    return AckClaim(int(escalation), str(person), until)


class _Esc(Protocol):
    recipient: str
    level: int
    fired_at: datetime
    acked_at: datetime | None
    acked_by: str | None


class _Task(Protocol):
    status: str
    acked_at: datetime | None
    acked_by: str | None


Refusal = tuple[str, dict[str, Any]]  # a msgid of the web catalogue and its fields


def refusal(claim: AckClaim, esc: _Esc, task: _Task, held: bool) -> Refusal | None:
    """Why a verified link no longer acknowledges (None: it does). `held`: the task's chain is held by a live
    acknowledgement (crisis.service.tasks.live_ack). Pure: the facts are read by the caller."""
    if esc.recipient != claim.person:
        return "This link was not issued to the person it names.", {}
    if esc.acked_at is not None:
        return "This link has already been used: {who} acknowledged it.", {"who": esc.acked_by or "?"}
    if task.status != "open":
        return "This link has expired: the task is no longer open.", {}
    if held:
        return "Nothing to acknowledge: {who} has already acknowledged this task and the chain is held.", \
            {"who": task.acked_by or "?"}
    return None


def paged_since(esc: _Esc, chain: list[Any]) -> list[Any]:
    """The escalations of the same task fired after this one: the levels that superseded it."""
    return [e for e in chain if e is not esc and (e.fired_at, e.level) > (esc.fired_at, esc.level)]
