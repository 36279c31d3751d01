"""Fixtures for the HTTP API tests: the app on the test service (SQLite file, virtual clock), accounts with
a cheap argon2 setting, and helpers to sign in and to make tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from crisis.accounts import Accounts
from crisis.http.app import create_app

PW = "correct horse battery"
SECRET = "shared-signals-secret"
FAST_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))  # tests only
API = "/api/v1"


@pytest.fixture()
def accounts(svc) -> Accounts:
    acc = Accounts(svc.engine, svc.roster, svc.clock, hasher=FAST_HASH)
    for p in svc.roster.people:
        acc.set_password(p.id, PW, by="president")
    return acc


@pytest.fixture()
def app(svc, accounts):
    return create_app(svc, accounts, signals_secret=SECRET)


@pytest.fixture()
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture()
def anon(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


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
