"""Fixtures for the HTTP API tests: the app on the test service (SQLite file, virtual clock) and accounts with
a cheap argon2 setting. The constants and helpers the tests import live in apihelpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apihelpers import FAST_HASH, PW, SECRET
from fastapi.testclient import TestClient

from crisis.accounts import Accounts
from crisis.http.app import create_app


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
