"""Inbound monitoring signals: `POST /api/v1/signals` from a monitoring vendor or another hospital system.

Authenticated by an API token with the `signals` scope, or by an HMAC-SHA256 signature over
`"{timestamp}.{idempotency key}.{body}"` with the shared secret (header `X-Crisis-Signature: t=<unix seconds>,
v1=<hex digest>`; a timestamp more than five minutes off is refused, so a captured request cannot be
replayed later). The `Idempotency-Key` header is required: a repeated request gets the first answer and
changes nothing twice. A signal opens an incident, or updates the signals of the open incident with the
same source URL.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from crisis.engine.fsm import FINAL
from crisis.errors import InputError
from crisis.http import idempotency
from crisis.http.api import by, encode, service
from crisis.http.auth import Identity, authenticate
from crisis.http.errors import ApiError

SIGNATURE_HEADER = "X-Crisis-Signature"
TOLERANCE_SECONDS = 300


class SignalIn(BaseModel):
    """One monitoring hit: what is being said, where, and how far it has spread."""

    category: str = Field(min_length=1, max_length=64, examples=["medical_dispute"])
    title: str = Field(min_length=1, max_length=200, examples=["网传我院术后患者死亡"])
    source_url: str = Field(min_length=1, max_length=2000, examples=["https://weibo.example/p/1"])
    signals: dict[str, float] = Field(default_factory=dict, examples=[{"reposts": 120, "views": 18000}])
    severity: str | None = Field(default=None, description="Initial grade I–IV (default: the playbook's).")


def sign(secret: str, timestamp: int, key: str, body: bytes) -> str:
    """The v1 signature a sender computes (and the receiver recomputes)."""
    msg = f"{timestamp}.{key}.".encode() + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, key: str, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, key, body)}"


def verify_signature(request: Request, header: str, key: str, body: bytes) -> Identity:
    secret: str | None = request.app.state.signals_secret
    if not secret:
        raise ApiError(401, "signed signals are not enabled on this server (no shared secret configured)")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts.get("t", ""))
    except ValueError:
        raise ApiError(401, f"{SIGNATURE_HEADER} must be 't=<unix seconds>,v1=<hex>'") from None
    now = service(request).clock.now().timestamp()
    if abs(now - ts) > TOLERANCE_SECONDS:
        raise ApiError(401, f"signature timestamp is more than {TOLERANCE_SECONDS} s off the server's clock")
    if not hmac.compare_digest(parts.get("v1", ""), sign(secret, ts, key, body)):
        raise ApiError(401, "signature does not match")
    return Identity(request.app.state.signals_person, "hmac", frozenset({"signals"}), credential="hmac")


router = APIRouter(tags=["signals"])


async def signal_identity(request: Request) -> Identity:
    """A token with the signals scope, or a valid fresh signature over the raw body (checked before the body
    is parsed, so an unauthenticated caller learns nothing about the payload format)."""
    body = await request.body()  # cached by Starlette; the signature covers these exact bytes
    key = request.headers.get("idempotency-key")
    if not key:
        raise InputError("the Idempotency-Key header is required", field="Idempotency-Key")
    if request.headers.get("authorization") is not None:
        ident = await authenticate(request)
        assert ident is not None
        if not ident.allows("signals"):
            raise ApiError(403, "this credential lacks the 'signals' scope", rule="scope:signals")
        return ident
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        raise ApiError(401, f"send an API token with the signals scope or an {SIGNATURE_HEADER} header")
    return verify_signature(request, header, key, body)


@router.post("/signals", responses={200: {"description": "updated, or a replay"}, 201: {"description": "opened"}})
async def receive_signal(
    request: Request,
    ident: Annotated[Identity, Depends(signal_identity)],
    payload: SignalIn,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    x_crisis_signature: Annotated[str | None, Header(description="t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                                                                 "'{t}.{Idempotency-Key}.{body}'>")] = None,
) -> JSONResponse:
    """Open an incident, or update the signals of the open incident with the same source URL."""
    body = await request.body()
    return await run_in_threadpool(_ingest, request, ident, idempotency_key, body, payload)


def _ingest(request: Request, ident: Identity, key: str, body: bytes, payload: SignalIn) -> JSONResponse:
    svc = service(request)
    full_key = f"{ident.credential}:{key}"
    stored = idempotency.claim(svc.engine, full_key, hashlib.sha256(body).hexdigest(), svc.clock.now())
    if stored is not None:
        return JSONResponse(stored.response, status_code=stored.status_code, headers={"Idempotency-Replayed": "true"})
    try:
        status, result, incident_id = _apply(request, ident, payload)
    except BaseException:
        idempotency.release(svc.engine, full_key)
        raise
    idempotency.complete(svc.engine, full_key, status, result, incident_id)
    return JSONResponse(result, status_code=status)


def _apply(request: Request, ident: Identity, p: SignalIn) -> tuple[int, dict[str, Any], int | None]:
    svc = service(request)
    if p.category not in svc.playbooks.categories:
        raise InputError(f"unknown category '{p.category}' (known: {', '.join(svc.playbooks.categories)})",
                         field="category")
    same_source = [i for i in svc.incidents(include_final=False) if i.source_url == p.source_url
                   and i.stage not in FINAL]
    if same_source:
        inc = svc.update_signals(same_source[-1].id or 0, p.signals, note=f"signal: {p.title}", **by(ident))
        status, action = 200, "updated"
    else:
        inc = svc.open_incident(title=p.title, category=p.category, source_url=p.source_url, signals=p.signals,
                                severity=p.severity, **by(ident))
        status, action = 201, "opened"
    request.app.state.deliver()
    return status, {"action": action, "incident": encode(inc)}, inc.id
