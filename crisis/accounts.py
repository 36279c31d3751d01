"""Accounts: roster people's passwords, login sessions, API tokens and the throttling of failed sign-ins.

One transaction per command, like the service; every change is an audit event (incident-less) naming who
acted and how they were authenticated. Passwords are argon2id hashes (pwdlib); session and API tokens are
256-bit random strings stored as SHA-256 digests, shown to their owner once.

Failed sign-ins are counted per account and per client address: after a few, each further attempt must
wait an exponentially growing delay (refused early with the time to wait, so no server thread sleeps);
after more, the key is locked for a while, even for the right password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from pwdlib import PasswordHash
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from crisis.clock import Clock
from crisis.errors import InputError, NotFound, TooManyAttempts, Unauthenticated
from crisis.logs import get_logger
from crisis.roster import Roster
from crisis.store.auth_models import Account, ApiToken, LoginSession, LoginThrottle
from crisis.store.db import read_session, write_session
from crisis.store.models import Event

SCOPES = ("signals", "read", "write")  # write implies read
TOKEN_PREFIX = "crisis_"
SESSION_TTL = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
TOUCH_EVERY = timedelta(minutes=1)  # last-seen / last-used writes at most this often
MIN_PASSWORD, MAX_PASSWORD = 10, 1024


@dataclass(frozen=True)
class ThrottleRule:
    """`free` failures pass unhindered; then each attempt waits base·2^(n-free) s (capped); `lock_at` locks."""

    free: int
    lock_at: int
    lock_for: timedelta
    base_delay: float = 1.0
    max_delay: float = 60.0

    def wait(self, failures: int, last_failure_at: datetime, locked_until: datetime | None,
             now: datetime) -> tuple[float, bool]:
        """Seconds the next attempt must still wait, and whether that is a lock (pure)."""
        if locked_until is not None and now < locked_until:
            return (locked_until - now).total_seconds(), True
        if failures < self.free:
            return 0.0, False
        delay = min(self.base_delay * 2 ** (failures - self.free), self.max_delay)
        return max(0.0, (last_failure_at + timedelta(seconds=delay) - now).total_seconds()), False


PER_ACCOUNT = ThrottleRule(free=3, lock_at=10, lock_for=timedelta(minutes=15))
PER_CLIENT = ThrottleRule(free=10, lock_at=30, lock_for=timedelta(minutes=15))


def check_password_policy(password: str, *, person_id: str, name: str = "") -> None:
    """The password policy (pure): 10 to 1024 characters, at least 5 different ones, and not containing the
    person's id or name, which anyone on the roster can read. InputError on field "password" otherwise."""
    problem = None
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        problem = f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters"
    elif len(set(password)) < 5:
        problem = "a password needs at least 5 different characters"
    elif any(part and len(part) >= 3 and part.casefold() in password.casefold() for part in (person_id, name)):
        problem = "a password must not contain the person's id or name"
    if problem:
        raise InputError(problem, field="password")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class SignIn:
    """A new login session: the cookie value (shown once) and the CSRF token forms must echo."""

    token: str
    person_id: str
    csrf_token: str
    expires_at: datetime


class Accounts:
    def __init__(self, engine: Engine, roster: Roster, clock: Clock, *, hasher: PasswordHash | None = None) -> None:
        self.engine, self.roster, self.clock = engine, roster, clock
        self.hasher = hasher or PasswordHash.recommended()  # argon2id, pwdlib's current parameters
        self.log = get_logger(component="accounts")

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the person has no account, so both cases cost the same time."""
        return self.hasher.hash(secrets.token_urlsafe(16))

    # ------------------------------------------------------------------ audit
    def _audit(self, s: Session, *, actor: str, kind: str, auth: str, now: datetime, **data: Any) -> None:
        s.connection().execute(insert(Event.__table__), [{  # type: ignore[attr-defined]
            "incident_id": None, "at": now, "actor": actor, "kind": kind, "from_state": None, "to_state": None,
            "task_id": None, "data": {"auth": auth, **data}}])
        self.log.info(kind, actor=actor, auth=auth, at=now.isoformat(), **data)

    # ------------------------------------------------------------------ passwords
    def set_password(self, person_id: str, password: str, *, by: str, auth: str = "cli") -> None:
        """Create or replace a person's password (an administrator's reset; the person must be on the roster).
        A reset lifts the lock-out and ends every session the person had: whoever knew the old password is out."""
        person = self.roster.person(person_id)
        check_password_policy(password, person_id=person_id, name=person.name)
        hashed = self.hasher.hash(password)
        now = self.clock.now()
        with write_session(self.engine) as s:
            self._store_password(s, person_id, hashed, now)
            ended = self._end_sessions(s, person_id, now, keep=None)
            self._audit(s, actor=by, kind="password_set", auth=auth, now=now, person=person_id,
                        sessions_ended=ended)

    def change_password(self, person_id: str, current: str, new: str, *, client: str | None,
                        keep_session: str | None = None, auth: str = "session") -> int:
        """A person changes their own password: the current one is checked like a sign-in (throttled, and a
        wrong one counts towards the lock-out), the new one must pass the policy and differ from it. Every
        other session of the person ends (a stolen cookie stops working); `keep_session`, the cookie of the
        browser that asked, stays signed in. API tokens are separate credentials and stay. Returns how many
        sessions ended."""
        person = self.roster.person(person_id)
        now = self.clock.now()
        keys = [(f"person:{person_id}", PER_ACCOUNT)] + ([(f"client:{client}", PER_CLIENT)] if client else [])
        self._check_throttle(keys, now)
        with read_session(self.engine) as s:
            acc = s.get(Account, person_id)
        if acc is None or not self.hasher.verify(current, acc.password_hash):
            self._count_failure(keys, person_id, client, now)
            raise Unauthenticated("the current password is wrong")
        if new == current:
            raise InputError("the new password must differ from the current one", field="new")
        check_password_policy(new, person_id=person_id, name=person.name)
        hashed = self.hasher.hash(new)
        with write_session(self.engine) as s:
            self._store_password(s, person_id, hashed, now)
            ended = self._end_sessions(s, person_id, now, keep=digest(keep_session) if keep_session else None)
            self._audit(s, actor=person_id, kind="password_changed", auth=auth, now=now, person=person_id,
                        sessions_ended=ended, client=client)
        return ended

    def _store_password(self, s: Session, person_id: str, hashed: str, now: datetime) -> None:
        acc = s.get(Account, person_id)
        if acc is None:
            acc = Account(person_id=person_id, password_hash=hashed, created_at=now, updated_at=now)
        acc.password_hash, acc.updated_at = hashed, now
        s.add(acc)
        throttle = s.get(LoginThrottle, f"person:{person_id}")
        if throttle is not None:  # a new password lifts the lock
            s.delete(throttle)

    def _end_sessions(self, s: Session, person_id: str, now: datetime, *, keep: str | None) -> int:
        """Revoke the person's live sessions except the one whose digest is `keep`; how many ended."""
        stmt = update(LoginSession).where(col(LoginSession.person_id) == person_id,
                                          col(LoginSession.revoked_at).is_(None),
                                          col(LoginSession.expires_at) > now)
        if keep is not None:
            stmt = stmt.where(col(LoginSession.token_hash) != keep)
        return int(s.connection().execute(stmt.values(revoked_at=now)).rowcount or 0)

    def has_password(self, person_id: str) -> bool:
        with read_session(self.engine) as s:
            return s.get(Account, person_id) is not None

    # ------------------------------------------------------------------ sign-in
    def login(self, person_id: str, password: str, *, client: str | None) -> SignIn:
        """Check a password under the throttle; a success opens a session, a failure is counted."""
        now = self.clock.now()
        keys = [(f"person:{person_id}", PER_ACCOUNT)] + ([(f"client:{client}", PER_CLIENT)] if client else [])
        self._check_throttle(keys, now)
        with read_session(self.engine) as s:
            acc = s.get(Account, person_id)
        ok = self.hasher.verify(password, acc.password_hash if acc else self._dummy_hash) and acc is not None
        if not ok:
            self._count_failure(keys, person_id, client, now)
            raise Unauthenticated("wrong person or password")
        assert acc is not None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        sess = LoginSession(token_hash=digest(token), person_id=person_id, csrf_token=csrf, created_at=now,
                            expires_at=now + SESSION_TTL, last_seen_at=now, client=client)
        with write_session(self.engine) as s:
            s.add(sess)
            throttle = s.get(LoginThrottle, f"person:{person_id}")
            if throttle is not None:
                s.delete(throttle)
            self._audit(s, actor=person_id, kind="login", auth="password", now=now, client=client)
        return SignIn(token=token, person_id=person_id, csrf_token=csrf, expires_at=sess.expires_at)

    def _check_throttle(self, keys: list[tuple[str, ThrottleRule]], now: datetime) -> None:
        with read_session(self.engine) as s:
            for key, rule in keys:
                row = s.get(LoginThrottle, key)
                if row is None:
                    continue
                wait, locked = rule.wait(row.failures, row.last_failure_at, row.locked_until, now)
                if wait > 0:
                    what = "locked after repeated failed sign-ins" if locked else "slowed after failed sign-ins"
                    raise TooManyAttempts(f"sign-in {what}; try again in {int(wait + 0.999)} s", wait)

    def _count_failure(self, keys: list[tuple[str, ThrottleRule]], person_id: str, client: str | None,
                       now: datetime) -> None:
        with write_session(self.engine) as s:
            for key, rule in keys:
                row = s.get(LoginThrottle, key) or LoginThrottle(key=key, failures=0, last_failure_at=now)
                if row.locked_until is not None and row.locked_until <= now:
                    row.failures, row.locked_until = 0, None  # the lock has passed: start counting afresh
                row.failures += 1
                row.last_failure_at = now
                s.add(row)
                if row.failures >= rule.lock_at:
                    row.locked_until = now + rule.lock_for
                    self._audit(s, actor="anonymous", kind="login_locked", auth="password", now=now, key=key,
                                until=row.locked_until.isoformat())
            self._audit(s, actor="anonymous", kind="login_failed", auth="password", now=now, person=person_id,
                        client=client)

    def session(self, token: str) -> LoginSession | None:
        """The live session a cookie names (None if unknown, revoked, expired or idle too long)."""
        now = self.clock.now()
        with read_session(self.engine) as s:
            sess = s.get(LoginSession, digest(token))
        if sess is None or sess.revoked_at is not None or now >= sess.expires_at \
                or now - sess.last_seen_at >= SESSION_IDLE:
            return None
        if now - sess.last_seen_at >= TOUCH_EVERY:
            with write_session(self.engine) as s:
                row = s.get(LoginSession, sess.token_hash)
                if row is not None:
                    row.last_seen_at = now
                    s.add(row)
        return sess

    def logout(self, token: str) -> None:
        now = self.clock.now()
        with write_session(self.engine) as s:
            sess = s.get(LoginSession, digest(token))
            if sess is None or sess.revoked_at is not None:
                return
            sess.revoked_at = now
            s.add(sess)
            self._audit(s, actor=sess.person_id, kind="logout", auth="session", now=now)

    # ------------------------------------------------------------------ API tokens
    def create_token(self, name: str, scopes: list[str], *, person_id: str, by: str,
                     auth: str = "cli") -> tuple[str, ApiToken]:
        """A new token acting as `person_id`; the secret is returned once and stored only as a digest."""
        if not name.strip():
            raise InputError("a token needs a name", field="name")
        if not scopes:
            raise InputError(f"give at least one scope ({', '.join(SCOPES)})", field="scope")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise InputError(f"unknown scope(s) {', '.join(unknown)} (use {', '.join(SCOPES)})", field="scope")
        self.roster.person(person_id)
        now = self.clock.now()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        tok = ApiToken(name=name.strip(), token_hash=digest(secret), prefix=secret[:len(TOKEN_PREFIX) + 6],
                       person_id=person_id, scopes=sorted(set(scopes)), created_by=by, created_at=now)
        with write_session(self.engine) as s:
            s.add(tok)
            s.flush()
            self._audit(s, actor=by, kind="token_created", auth=auth, now=now, token=tok.id, name=tok.name,
                        scopes=tok.scopes, acts_as=person_id)
        return secret, tok

    def tokens(self) -> list[ApiToken]:
        with read_session(self.engine) as s:
            return list(s.exec(select(ApiToken).order_by(col(ApiToken.id))).all())

    def revoke_token(self, ref: str, *, by: str, auth: str = "cli") -> ApiToken:
        """Revoke by id or by name (a name must be unambiguous among live tokens)."""
        now = self.clock.now()
        with write_session(self.engine) as s:
            if ref.isdigit():
                found = [t for t in [s.get(ApiToken, int(ref))] if t is not None]
            else:
                found = list(s.exec(select(ApiToken).where(ApiToken.name == ref,
                                                           col(ApiToken.revoked_at).is_(None))).all())
            if not found:
                raise NotFound(f"no live token {ref!r}")
            if len(found) > 1:
                raise InputError(f"{len(found)} live tokens are named {ref!r}; revoke by id", field="token")
            tok = found[0]
            if tok.revoked_at is None:
                tok.revoked_at = now
                s.add(tok)
                self._audit(s, actor=by, kind="token_revoked", auth=auth, now=now, token=tok.id, name=tok.name)
        return tok

    def authenticate_token(self, secret: str) -> ApiToken | None:
        """The live token for a bearer secret, recording when it was last used."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        now = self.clock.now()
        with read_session(self.engine) as s:
            tok = s.exec(select(ApiToken).where(ApiToken.token_hash == digest(secret))).first()
        if tok is None or tok.revoked_at is not None:
            return None
        if tok.last_used_at is None or now - tok.last_used_at >= TOUCH_EVERY:
            with write_session(self.engine) as s:
                row = s.get(ApiToken, tok.id)
                if row is not None:
                    row.last_used_at = now
                    s.add(row)
            tok.last_used_at = now
        return tok
