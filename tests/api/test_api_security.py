"""Security through the API: no magic actors, CSRF, token scope and revocation, HMAC and replay, lock-out."""

from __future__ import annotations

import json

from apihelpers import API, PW, SECRET, error, sign_in, token
from fastapi.testclient import TestClient

from crisis.accounts import PER_ACCOUNT
from crisis.http.signals import SIGNATURE_HEADER, signature_header

SIGNAL = {"category": "medical_dispute", "title": "网传我院术后患者死亡", "source_url": "https://weibo.example/p/1",
          "signals": {"reposts": 120, "views": 18000}}


def test_no_request_body_names_an_actor(anon):
    """Who acts comes from the credential, never from the request: no schema has an actor-like field."""
    doc = anon.get(f"{API}/openapi.json").json()
    for name, schema in doc["components"]["schemas"].items():
        props = set(schema.get("properties", {}))
        assert not props & {"actor", "by", "principal", "person_id", "as"}, name
    params = {p["name"] for ops in doc["paths"].values() for op in ops.values() for p in op.get("parameters", [])}
    assert not params & {"actor", "by", "principal"}


def test_built_in_actor_names_cannot_sign_in(anon):
    for name in ("system", "drill"):
        res = anon.post(f"{API}/auth/login", json={"person": name, "password": PW})
        assert res.status_code == 401


def test_an_actor_field_in_a_body_is_ignored(client, svc):
    sign_in(client, "duty_officer")
    res = client.post(f"{API}/incidents", json={"title": "t", "category": "medical_dispute", "actor": "system"})
    assert res.status_code == 201 and res.json()["incident"]["opened_by"] == "duty_officer"


def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(client, svc):
    sign_in(client, "president")
    good = client.headers.pop("X-CSRF-Token")
    body = {"title": "t", "category": "medical_dispute"}
    res = client.post(f"{API}/incidents", json=body)
    assert res.status_code == 403 and error(res)["rule"] == "csrf"
    res = client.post(f"{API}/incidents", json=body, headers={"X-CSRF-Token": good + "x"})
    assert res.status_code == 403
    assert svc.incidents() == []
    assert client.get(f"{API}/incidents").status_code == 200  # reads need no token
    assert client.post(f"{API}/incidents", json=body, headers={"X-CSRF-Token": good}).status_code == 201


def test_csrf_token_as_a_form_field(client, app):
    """The web pages' forms carry the token as a hidden field; the same check applies."""
    from fastapi import Depends, Form

    from crisis.http.auth import Identity, require

    @app.post("/form-probe")
    def probe(ident: Identity = Depends(require("write")), note: str = Form("")) -> dict:  # noqa: B008
        return {"person": ident.person, "note": note}

    sign_in(client, "president")
    csrf = client.headers.pop("X-CSRF-Token")
    assert client.post("/form-probe", data={"note": "hi"}).status_code == 403
    res = client.post("/form-probe", data={"note": "hi", "csrf_token": csrf})
    assert res.status_code == 200 and res.json() == {"person": "president", "note": "hi"}


def test_logout_ends_the_session(client):
    sign_in(client, "president")
    assert client.post(f"{API}/auth/logout").status_code == 204
    assert client.get(f"{API}/incidents").status_code == 401


def test_session_cookie_flags(anon):
    res = anon.post(f"{API}/auth/login", json={"person": "president", "password": PW})
    cookies = res.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("crisis_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/" in session
    assert res.json()["expires_at"].endswith("Z")


def test_revoked_or_wrong_scope_token_is_refused(anon, accounts, svc):
    headers = token(accounts, "read")
    assert anon.get(f"{API}/incidents", headers=headers).status_code == 200
    res = anon.post(f"{API}/incidents", json={"title": "t", "category": "medical_dispute"}, headers=headers)
    assert res.status_code == 403 and error(res)["rule"] == "scope:write"
    sig = token(accounts, "signals")
    assert anon.get(f"{API}/incidents", headers=sig).status_code == 403
    tok_id = accounts.tokens()[-1].id
    accounts.revoke_token(str(tok_id), by="president")
    res = anon.post(f"{API}/signals", json=SIGNAL, headers={**sig, "Idempotency-Key": "k1"})
    assert res.status_code == 401
    res = anon.post(f"{API}/signals", json=SIGNAL, headers={**headers, "Idempotency-Key": "k1"})
    assert res.status_code == 403 and error(res)["rule"] == "scope:signals"
    assert anon.get(f"{API}/incidents", headers={"Authorization": "Bearer crisis_forged"}).status_code == 401
    assert anon.get(f"{API}/incidents", headers={"Authorization": "Basic abc"}).status_code == 401
    assert svc.incidents() == []


def _signed(clock, body: bytes, key: str, secret: str = SECRET, skew: int = 0) -> dict[str, str]:
    ts = int(clock.now().timestamp()) + skew
    return {SIGNATURE_HEADER: signature_header(secret, ts, key, body), "Idempotency-Key": key,
            "content-type": "application/json"}


def test_hmac_signed_signal_opens_then_updates(anon, svc, clock):
    body = json.dumps(SIGNAL).encode()
    res = anon.post(f"{API}/signals", content=body, headers=_signed(clock, body, "a1"))
    assert res.status_code == 201, res.text
    assert res.json()["action"] == "opened"
    iid = res.json()["incident"]["id"]
    body2 = json.dumps({**SIGNAL, "signals": {"reposts": 900}}).encode()
    res = anon.post(f"{API}/signals", content=body2, headers=_signed(clock, body2, "a2"))
    assert res.status_code == 200 and res.json()["action"] == "updated" and res.json()["incident"]["id"] == iid
    inc = svc.incident(iid)
    assert inc.signals == {"reposts": 900, "views": 18000} and inc.opened_by == "duty_officer"


def test_hmac_mismatch_stale_or_replay_changes_nothing(anon, svc, clock):
    body = json.dumps(SIGNAL).encode()
    res = anon.post(f"{API}/signals", content=body, headers=_signed(clock, body, "k", secret="wrong"))
    assert res.status_code == 401 and error(res)["code"] == "unauthenticated"
    tampered = json.dumps({**SIGNAL, "title": "改过的标题"}).encode()
    res = anon.post(f"{API}/signals", content=tampered, headers=_signed(clock, body, "k"))
    assert res.status_code == 401
    res = anon.post(f"{API}/signals", content=body, headers=_signed(clock, body, "k", skew=-301))
    assert res.status_code == 401 and "off" in error(res)["message"]
    res = anon.post(f"{API}/signals", content=body, headers={"Idempotency-Key": "k"})
    assert res.status_code == 401
    res = anon.post(f"{API}/signals", content=body, headers=_signed(clock, body, "k")
                    | {"Idempotency-Key": "other"})  # the key is signed too: swapping it breaks the signature
    assert res.status_code == 401
    assert svc.incidents() == []

    headers = _signed(clock, body, "once")
    first = anon.post(f"{API}/signals", content=body, headers=headers)
    assert first.status_code == 201
    events = len(svc.timeline(first.json()["incident"]["id"]))
    again = anon.post(f"{API}/signals", content=body, headers=headers)  # replayed as is
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotency-Replayed"] == "true"
    assert len(svc.incidents()) == 1 and len(svc.timeline(first.json()["incident"]["id"])) == events


def test_idempotency_key_reused_for_another_body_is_409(anon, accounts, svc):
    headers = {**token(accounts, "signals"), "Idempotency-Key": "same"}
    assert anon.post(f"{API}/signals", json=SIGNAL, headers=headers).status_code == 201
    res = anon.post(f"{API}/signals", json={**SIGNAL, "signals": {"reposts": 5}}, headers=headers)
    assert res.status_code == 409
    assert svc.incident(1).signals == SIGNAL["signals"]


def test_signal_needs_an_idempotency_key_and_a_valid_body(anon, accounts, svc):
    res = anon.post(f"{API}/signals", json=SIGNAL, headers=token(accounts, "signals"))
    assert res.status_code == 422 and error(res)["field"] == "Idempotency-Key"
    res = anon.post(f"{API}/signals", json={**SIGNAL, "source_url": None},
                    headers={**token(accounts, "signals"), "Idempotency-Key": "x"})
    assert res.status_code == 422 and error(res)["field"] == "source_url"
    assert svc.incidents() == []


def test_lockout_after_repeated_failures(app, advance):
    with TestClient(app, raise_server_exceptions=False) as c:
        for _ in range(PER_ACCOUNT.lock_at):
            advance(seconds=PER_ACCOUNT.max_delay)
            res = c.post(f"{API}/auth/login", json={"person": "president", "password": "wrong password!"})
            assert res.status_code == 401
        res = c.post(f"{API}/auth/login", json={"person": "president", "password": PW})
        assert res.status_code == 429 and int(res.headers["Retry-After"]) == 15 * 60
        assert error(res)["code"] == "too_many_attempts"
        advance(minutes=15)
        assert c.post(f"{API}/auth/login", json={"person": "president", "password": PW}).status_code == 200


def test_slowed_before_locked(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        wrong = {"person": "legal", "password": "nope-nope-nope"}
        for _ in range(PER_ACCOUNT.free):
            assert c.post(f"{API}/auth/login", json=wrong).status_code == 401
        res = c.post(f"{API}/auth/login", json={"person": "legal", "password": PW})
        assert res.status_code == 429 and res.headers["Retry-After"] == "1"


def test_readme_signal_example_is_accepted(anon, accounts, svc):
    """The README's curl line, sent as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    body = re.search(r"-d '(\{.*?\})'", readme, re.S)
    assert body is not None
    res = anon.post(f"{API}/signals", content=body.group(1).encode(),
                    headers={**token(accounts, "signals"), "Idempotency-Key": "weibo-p1-0001",
                             "content-type": "application/json"})
    assert res.status_code == 201, res.text
    assert svc.incident(res.json()["incident"]["id"]).signals == {"reposts": 120, "views": 18000}


def test_idempotency_claim_in_progress_then_abandoned(anon, accounts, svc, advance):
    """A key claimed by a request still running is a 409; one left by a crashed process is retaken later."""
    import hashlib

    from crisis.http import idempotency

    headers = {**token(accounts, "signals"), "Idempotency-Key": "crash"}
    body = json.dumps(SIGNAL).encode()
    credential = f"token:{accounts.tokens()[-1].id}"
    idempotency.claim(svc.engine, f"{credential}:crash", hashlib.sha256(body).hexdigest(), svc.clock.now())
    res = anon.post(f"{API}/signals", content=body, headers={**headers, "content-type": "application/json"})
    assert res.status_code == 409 and "still being processed" in error(res)["message"]
    assert svc.incidents() == []
    advance(minutes=6)
    res = anon.post(f"{API}/signals", content=body, headers={**headers, "content-type": "application/json"})
    assert res.status_code == 201


def test_password_change_keeps_this_session_and_ends_the_others(app, client, accounts):
    with TestClient(app, raise_server_exceptions=False) as other:
        sign_in(other, "president")
        sign_in(client, "president")
        res = client.post(f"{API}/auth/password", json={"current": "wrong password!", "new": "a brand new secret"})
        assert res.status_code == 401
        res = client.post(f"{API}/auth/password", json={"current": PW, "new": "short"})
        assert res.status_code == 422 and error(res)["field"] == "password"
        csrf = client.headers.pop("X-CSRF-Token")
        res = client.post(f"{API}/auth/password", json={"current": PW, "new": "a brand new secret"})
        assert res.status_code == 403 and error(res)["rule"] == "csrf"
        client.headers["X-CSRF-Token"] = csrf
        res = client.post(f"{API}/auth/password", json={"current": PW, "new": "a brand new secret"})
        assert res.status_code == 200 and res.json()["sessions_ended"] == 1
        assert client.get(f"{API}/auth/me").status_code == 200  # still signed in here
        assert other.get(f"{API}/auth/me").status_code == 401  # the other browser is out
    with TestClient(app, raise_server_exceptions=False) as anon:
        res = anon.post(f"{API}/auth/password", json={"current": PW, "new": "a brand new secret"})
        assert res.status_code == 401
        res = anon.post(f"{API}/auth/password", headers=token(accounts, "write", person="president"),
                        json={"current": "a brand new secret", "new": "yet another secret"})
        assert res.status_code == 403 and error(res)["rule"] == "session_only"
