"""Shared by the web tests: the app with pages on the test service, accounts with cheap hashing, sign-in
through the login form, and a way to get an escalation paged to a given person."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from crisis.accounts import Accounts
from crisis.http.app import create_app
from crisis.principal import Principal
from crisis.store.models import Escalation

PW = "correct horse battery"
ACK_SECRET = b"web-ack-secret"
FAST_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))  # tests only
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(svc):
    acc = Accounts(svc.engine, svc.roster, svc.clock, hasher=FAST_HASH)
    for p in svc.roster.people:
        acc.set_password(p.id, PW, by="president")
    return create_app(svc, acc, ack_secret=ACK_SECRET)


def login(client: TestClient, person: str) -> str:
    """Sign in through the form; returns the CSRF token the pages carry."""
    res = client.post("/login", data={"person": person, "password": PW, "next": "/"}, follow_redirects=False)
    assert res.status_code == 303, res.text
    page = client.get("/")
    return CSRF.search(page.text).group(1)  # type: ignore[union-attr]


def open_incident(svc, title: str = "网传患者投诉 <b>护士</b>"):
    return svc.open_incident(title=title, category="medical_dispute", signals={"reposts": 10},
                             principal=Principal(person="duty_officer", auth="cli"))


def escalate_to(svc, clock, person: str, limit: int = 40) -> Escalation:
    """Let deadlines pass (virtual clock) until an escalation is paged to `person`."""
    for _ in range(limit):
        for esc in svc.escalations(pending=True):
            if esc.recipient == person and esc.acked_at is None:
                return esc
        clock.advance(timedelta(minutes=30))
        svc.tick()
    raise AssertionError(f"no escalation reached {person}")
