"""Constants and helpers the HTTP API tests share (import them: `from apihelpers import ...`; fixtures live
in conftest.py): the test password and signals secret, a cheap argon2 setting, signing in, tokens, the error body."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from crisis.accounts import Accounts

PW = "correct horse battery"
SECRET = "shared-signals-secret"
FAST_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))  # tests only
API = "/api/v1"


def sign_in(client: TestClient, person: str) -> TestClient:
    """Sign `client` in as `person`; later writes carry the CSRF header."""
    res = client.post(f"{API}/auth/login", json={"person": person, "password": PW})
    assert res.status_code == 200, res.text
    client.headers["X-CSRF-Token"] = res.json()["csrf_token"]
    return client


def token(accounts: Accounts, *scopes: str, person: str = "duty_officer") -> dict[str, str]:
    secret, _ = accounts.create_token("t", list(scopes), person_id=person, by="president")
    return {"Authorization": f"Bearer {secret}"}


def error(res) -> dict:
    body = res.json()
    assert set(body) == {"error"} and {"code", "message", "field"} <= set(body["error"]), body
    return body["error"]
