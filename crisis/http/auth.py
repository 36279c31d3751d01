"""Who is calling: a bearer API token or a login-session cookie, turned into an `Identity`; CSRF for
cookie-authenticated writes; the sign-in / sign-out routes.

Reusable by the web pages (crisis/web): `require("read")` / `require("write")` as route dependencies,
`sign_in()` / `sign_out()` to set and clear the cookies from a form post, `csrf_token(identity)` for the
hidden `csrf_token` field every form must carry (or the `X-CSRF-Token` header, for htmx). A write with a
session cookie but without the matching token is refused with 403 before the handler runs.

Cookies: `crisis_session` (HttpOnly, SameSite=Lax, Secure on https) carries the session secret;
`crisis_csrf` (readable by scripts, SameSite=Strict) carries the CSRF token so a page script can echo it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from crisis.accounts import Accounts, SignIn, same
from crisis.http.errors import ApiError
from crisis.principal import roles_of

SESSION_COOKIE = "crisis_session"
CSRF_COOKIE = "crisis_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_SCOPES = frozenset({"read", "write"})


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: the roster person, how they proved it, and what the credential allows."""

    person: str
    auth: str  # "session" | "token" | "hmac"
    scopes: frozenset[str]
    csrf_token: str | None = None
    credential: str = ""  # "session:<digest prefix>", "token:<id>" or "hmac": namespaces idempotency keys

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or (scope == "read" and "write" in self.scopes)


def accounts_of(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


async def authenticate(request: Request) -> Identity | None:
    """The caller's identity from `Authorization: Bearer …` or the session cookie (None: anonymous).
    A bearer header that is present but wrong is refused, never silently ignored for the cookie."""
    accounts = accounts_of(request)
    header = request.headers.get("authorization")
    if header is not None:
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise ApiError(401, "Authorization must be 'Bearer <token>'")
        tok = await run_in_threadpool(accounts.authenticate_token, secret.strip())
        if tok is None:
            raise ApiError(401, "unknown or revoked API token")
        return Identity(tok.person_id, "token", frozenset(tok.scopes), credential=f"token:{tok.id}")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        sess = await run_in_threadpool(accounts.session, cookie)
        if sess is None:
            return None
        return Identity(sess.person_id, "session", SESSION_SCOPES, csrf_token=sess.csrf_token,
                        credential=f"session:{sess.token_hash[:16]}")
    return None


async def check_csrf(request: Request, ident: Identity) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token (header or form field)."""
    if ident.auth != "session" or request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)  # Starlette caches the parsed form for the handler
        sent = value if isinstance(value, str) else None
    if not sent or ident.csrf_token is None or not same(sent, ident.csrf_token):
        raise ApiError(403, f"missing or wrong CSRF token (send the {CSRF_HEADER} header or a "
                            f"'{CSRF_FIELD}' form field)", field=CSRF_FIELD, rule="csrf")


def require(scope: str) -> Callable[[Request], Awaitable[Identity]]:
    """A route dependency: an authenticated caller whose credential covers `scope` (401 / 403 otherwise)."""

    async def dependency(request: Request) -> Identity:
        ident = await authenticate(request)
        if ident is None:
            raise ApiError(401, "sign in, or send an API token as 'Authorization: Bearer <token>'")
        if not ident.allows(scope):
            raise ApiError(403, f"this credential lacks the '{scope}' scope (it has: "
                                f"{', '.join(sorted(ident.scopes))})", rule=f"scope:{scope}")
        await check_csrf(request, ident)
        request.state.identity = ident
        return ident

    return dependency


def csrf_token(ident: Identity) -> str:
    """The token a form rendered for this session must carry in its `csrf_token` field."""
    return ident.csrf_token or ""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookies(request: Request, response: Response, sign: SignIn, now: datetime) -> None:
    max_age = int((sign.expires_at - now).total_seconds())
    response.set_cookie(SESSION_COOKIE, sign.token, max_age=max_age, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")
    response.set_cookie(CSRF_COOKIE, sign.csrf_token, max_age=max_age, httponly=False, samesite="strict",
                        secure=_secure(request), path="/")


async def sign_in(request: Request, response: Response, person: str, password: str) -> SignIn:
    """Check the password (throttled per account and client address) and set the session cookies."""
    accounts = accounts_of(request)
    client = request.client.host if request.client else None
    sign = await run_in_threadpool(accounts.login, person, password, client=client)
    set_cookies(request, response, sign, accounts.clock.now())
    return sign


async def sign_out(request: Request, response: Response) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(accounts_of(request).logout, cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


class LoginBody(BaseModel):
    person: str = Field(min_length=1, max_length=64, description="Roster person id.")
    password: str = Field(min_length=1, max_length=1024)


router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login")
async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Sign in with a roster person's password: sets the session and CSRF cookies. Repeated failures are
    slowed, then locked for a while (429 with Retry-After)."""
    sign = await sign_in(request, response, body.person, body.password)
    return {"person": sign.person_id, "csrf_token": sign.csrf_token, "expires_at": sign.expires_at}


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response) -> None:
    """End the session (needs the CSRF token like every cookie-authenticated write)."""
    ident = await authenticate(request)
    if ident is not None:
        await check_csrf(request, ident)
    await sign_out(request, response)


class PasswordBody(BaseModel):
    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


async def change_password(request: Request, ident: Identity, current: str, new: str) -> int:
    """The signed-in person changes their own password (`Accounts.change_password`): the current one is
    checked under the sign-in throttle; the person's other sessions end, the one asking stays signed in.
    Only a session may do it: an API token is an integration's credential, not the person at a keyboard."""
    if ident.auth != "session":
        raise ApiError(403, "sign in with a password to change it (API tokens cannot)", rule="session_only")
    client = request.client.host if request.client else None
    return await run_in_threadpool(accounts_of(request).change_password, ident.person, current, new,
                                   client=client, keep_session=request.cookies.get(SESSION_COOKIE))


@router.post("/password")
async def password(body: PasswordBody, request: Request) -> dict[str, Any]:
    """Change the signed-in person's password (needs the CSRF token like every cookie-authenticated write).
    A wrong current password is 401 and counts towards the lock-out; a weak new one 422."""
    ident = await authenticate(request)
    if ident is None:
        raise ApiError(401, "not signed in")
    await check_csrf(request, ident)
    ended = await change_password(request, ident, body.current, body.new)
    return {"person": ident.person, "password_changed": True, "sessions_ended": ended}


@router.get("/me")
async def me(request: Request) -> dict[str, Any]:
    """Who the credential belongs to, how it was authenticated and what it may do."""
    ident = await authenticate(request)
    if ident is None:
        raise ApiError(401, "not signed in")
    roster = request.app.state.svc.roster
    return {"person": ident.person, "name": roster.name(ident.person), "auth": ident.auth,
            "scopes": sorted(ident.scopes),
            "roles": sorted(roles_of(roster, ident.person, accounts_of(request).clock.now()))}
