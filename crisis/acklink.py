"""One-tap acknowledgement links: an HMAC-signed token for (escalation id, person, expiry).

The notification carries `{public base URL}/ack/{token}`; the web page that consumes it calls `verify` and
enforces once-only use itself (the token is stateless). Tokens expire 24 hours after the page by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
