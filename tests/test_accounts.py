"""Accounts: passwords, sessions, API tokens, throttling of failed sign-ins (virtual clock: no sleeps)."""

from __future__ import annotations

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlmodel import Session, select
from typer.testing import CliRunner

from crisis.accounts import (
    PER_ACCOUNT,
    PER_CLIENT,
    Accounts,
    TooManyAttempts,
    Unauthenticated,
    check_password_policy,
)
from crisis.errors import InputError, NotFound
from crisis.store.models import Event

PW = "correct horse battery"
FAST_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))  # tests only


@pytest.fixture()
def accounts(engine, roster, clock) -> Accounts:
    return Accounts(engine, roster, clock, hasher=FAST_HASH)


def audit(engine) -> list[Event]:
    with Session(engine) as s:
        return list(s.exec(select(Event).where(Event.incident_id.is_(None))).all())


def test_password_login_session_logout(accounts, advance):
    accounts.set_password("president", PW, by="president")
    assert accounts.has_password("president") and not accounts.has_password("legal")
    sign = accounts.login("president", PW, client="10.0.0.1")
    sess = accounts.session(sign.token)
    assert sess is not None and sess.person_id == "president" and sess.csrf_token == sign.csrf_token
    assert sess.token_hash != sign.token  # only the digest is stored
    accounts.logout(sign.token)
    assert accounts.session(sign.token) is None


def test_session_expires_when_idle(accounts, advance):
    accounts.set_password("president", PW, by="president")
    sign = accounts.login("president", PW, client=None)
    advance(hours=1)
    assert accounts.session(sign.token) is not None  # touches last_seen
    advance(hours=1, minutes=59)
    assert accounts.session(sign.token) is not None
    advance(hours=2)
    assert accounts.session(sign.token) is None


def test_password_rules_and_unknown_person(accounts):
    with pytest.raises(InputError):
        accounts.set_password("president", "short", by="president")
    with pytest.raises(NotFound):
        accounts.set_password("nobody", PW, by="president")
    with pytest.raises(Unauthenticated):
        accounts.login("nobody", PW, client=None)
    with pytest.raises(Unauthenticated):
        accounts.login("legal", PW, client=None)  # on the roster but no password set


def test_failures_are_slowed_then_locked_per_account(accounts, advance):
    accounts.set_password("president", PW, by="president")
    for _ in range(PER_ACCOUNT.free):
        with pytest.raises(Unauthenticated):
            accounts.login("president", "wrong password!", client=None)
    # slowed: the next attempt must wait, even with the right password
    with pytest.raises(TooManyAttempts) as exc:
        accounts.login("president", PW, client=None)
    assert exc.value.retry_after == 1
    for _ in range(PER_ACCOUNT.free, PER_ACCOUNT.lock_at):
        advance(seconds=PER_ACCOUNT.max_delay)
        with pytest.raises(Unauthenticated):
            accounts.login("president", "wrong password!", client=None)
    advance(seconds=PER_ACCOUNT.max_delay)
    with pytest.raises(TooManyAttempts) as exc:  # locked: the right password is refused too
        accounts.login("president", PW, client=None)
    assert "locked" in str(exc.value)
    assert exc.value.retry_after == 14 * 60  # 15 min from the last failure, one minute ago
    advance(minutes=14)
    assert accounts.login("president", PW, client=None).person_id == "president"
    kinds = [e.kind for e in audit(accounts.engine)]
    assert kinds.count("login_failed") == PER_ACCOUNT.lock_at and "login_locked" in kinds and "login" in kinds


def test_failures_are_counted_per_client_address(accounts, roster, advance):
    for p in roster.people:
        accounts.set_password(p.id, PW, by="president")
    people = [p.id for p in roster.people]
    for i in range(PER_CLIENT.lock_at):
        advance(seconds=PER_CLIENT.max_delay)
        with pytest.raises(Unauthenticated):
            accounts.login(people[i % len(people)], "wrong password!", client="203.0.113.9")
    advance(seconds=PER_CLIENT.max_delay)
    with pytest.raises(TooManyAttempts):  # another person, same address: locked
        accounts.login("legal", PW, client="203.0.113.9")
    assert accounts.login("legal", PW, client="198.51.100.1").person_id == "legal"


def test_new_password_lifts_the_lock(accounts, advance):
    accounts.set_password("president", PW, by="president")
    for _ in range(PER_ACCOUNT.lock_at):
        advance(seconds=PER_ACCOUNT.max_delay)
        with pytest.raises(Unauthenticated):
            accounts.login("president", "wrong password!", client=None)
    with pytest.raises(TooManyAttempts):
        accounts.login("president", PW, client=None)
    accounts.set_password("president", PW + "2", by="president")
    assert accounts.login("president", PW + "2", client=None)


def test_tokens_hashed_scoped_revocable_last_used(accounts, advance):
    secret, tok = accounts.create_token("vendor", ["signals"], person_id="duty_officer", by="president")
    assert secret.startswith("crisis_") and secret not in tok.token_hash and tok.scopes == ["signals"]
    found = accounts.authenticate_token(secret)
    assert found is not None and found.id == tok.id and found.last_used_at == accounts.clock.now()
    assert accounts.authenticate_token(secret + "x") is None
    assert accounts.authenticate_token("not-a-token") is None
    accounts.revoke_token("vendor", by="president")
    assert accounts.authenticate_token(secret) is None
    with pytest.raises(NotFound):
        accounts.revoke_token("vendor", by="president")  # no live token of that name any more
    with pytest.raises(InputError):
        accounts.create_token("x", ["admin"], person_id="duty_officer", by="president")
    with pytest.raises(InputError):
        accounts.create_token("x", [], person_id="duty_officer", by="president")
    kinds = [(e.kind, e.actor, e.data["auth"]) for e in audit(accounts.engine)]
    assert ("token_created", "president", "cli") in kinds and ("token_revoked", "president", "cli") in kinds


def test_cli_reads_password_from_stdin_never_argv(tmp_path, monkeypatch):
    from crisis.cli import app

    monkeypatch.setenv("CRISIS_DB_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("CRISIS_LOG", str(tmp_path / "log"))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    res = runner.invoke(app, ["user", "set-password", "president"], input=PW + "\n")
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["user", "set-password", "president", PW])  # a password in argv is refused
    assert res.exit_code == 2
    res = runner.invoke(app, ["token", "create", "--name", "vendor", "--scope", "signals", "--json"])
    assert res.exit_code == 0, res.output
    assert '"token": "crisis_' in res.output
    res = runner.invoke(app, ["token", "list", "--json"])
    assert "token_hash" not in res.output and "vendor" in res.output
    assert runner.invoke(app, ["token", "revoke", "vendor"]).exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "vendor"]).exit_code == 2


def test_password_policy_is_one_pure_rule():
    check_password_policy(PW, person_id="president", name="王院长")
    for weak in ("short", "aaaaaaaaaaaa", "ababababcabab", "my president pw", "王院长的密码不能这样", "x" * 1025):
        with pytest.raises(InputError) as exc:
            check_password_policy(weak, person_id="president", name="王院长")
        assert exc.value.field == "password"


def test_change_password_checks_the_old_one_and_ends_the_other_sessions(accounts, advance):
    accounts.set_password("president", PW, by="president")
    here, phone, stolen = (accounts.login("president", PW, client=c) for c in ("10.0.0.1", "10.0.0.2", "10.0.0.3"))
    accounts.set_password("legal", PW, by="president")
    other = accounts.login("legal", PW, client=None)
    secret, _ = accounts.create_token("feed", ["signals"], person_id="president", by="president")
    with pytest.raises(Unauthenticated):
        accounts.change_password("president", "wrong password!", "a brand new secret", client="10.0.0.1")
    with pytest.raises(InputError):
        accounts.change_password("president", PW, PW, client="10.0.0.1")
    with pytest.raises(InputError):
        accounts.change_password("president", PW, "president 2026!", client="10.0.0.1")
    assert accounts.login("president", PW, client=None)  # nothing changed so far
    ended = accounts.change_password("president", PW, "a brand new secret", client="10.0.0.1",
                                     keep_session=here.token)
    assert ended == 3  # the phone, the stolen cookie and the check-sign-in above; not this browser
    assert accounts.session(here.token) is not None
    assert accounts.session(phone.token) is None and accounts.session(stolen.token) is None
    assert accounts.session(other.token) is not None  # someone else's session stays
    assert accounts.authenticate_token(secret) is not None  # an integration's token is another credential
    with pytest.raises(Unauthenticated):
        accounts.login("president", PW, client=None)
    assert accounts.login("president", "a brand new secret", client=None).person_id == "president"
    changed = [e for e in audit(accounts.engine) if e.kind == "password_changed"]
    assert len(changed) == 1 and changed[0].actor == "president" and changed[0].data["sessions_ended"] == 3


def test_change_password_is_throttled_like_a_sign_in(accounts, advance):
    accounts.set_password("president", PW, by="president")
    for _ in range(PER_ACCOUNT.lock_at):
        advance(seconds=PER_ACCOUNT.max_delay)
        with pytest.raises(Unauthenticated):
            accounts.change_password("president", "wrong password!", "a brand new secret", client=None)
    with pytest.raises(TooManyAttempts):  # locked: the right current password is refused too
        accounts.change_password("president", PW, "a brand new secret", client=None)
    assert [e.kind for e in audit(accounts.engine)].count("login_failed") == PER_ACCOUNT.lock_at


def test_an_administrators_reset_ends_every_session(accounts):
    accounts.set_password("president", PW, by="president")
    sign = accounts.login("president", PW, client=None)
    accounts.set_password("president", "reset by the admin", by="info_head")
    assert accounts.session(sign.token) is None
    reset = [e for e in audit(accounts.engine) if e.kind == "password_set"][-1]
    assert reset.actor == "info_head" and reset.data["sessions_ended"] == 1
