"""Two clients racing on the same thing through the API: one wins, the other gets 409 and changes nothing.
On the SQLite file and on a throwaway PostgreSQL cluster (skipped, with the reason, where there is none)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from apihelpers import API, FAST_HASH, PW, sign_in
from fastapi.testclient import TestClient
from pgserver import pg_cluster, pg_url  # noqa: F401  (fixtures)

from crisis.accounts import Accounts
from crisis.http.app import create_app
from crisis.service import CrisisService
from crisis.store.db import make_engine
from crisis.store.migrate import create_db

ROUNDS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def racing_app(request, tmp_path, playbooks, roster, clock):
    sqlite = f"sqlite:///{tmp_path / 'race.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    create_db(engine)
    svc = CrisisService(engine, playbooks, roster, clock)
    accounts = Accounts(engine, roster, clock, hasher=FAST_HASH)
    for person in ("president", "vp_medical", "info_staff", "commentator", "duty_officer"):
        accounts.set_password(person, PW, by="president")
    yield create_app(svc, accounts), svc
    engine.dispose()


def _race(clients: list[TestClient], call: Callable[[TestClient], object]) -> list:
    barrier = threading.Barrier(len(clients))
    results: list = [None] * len(clients)

    def go(i: int) -> None:
        barrier.wait()
        results[i] = call(clients[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_two_clients_complete_the_same_task(racing_app):
    app, svc = racing_app
    with TestClient(app, raise_server_exceptions=False) as a, TestClient(app, raise_server_exceptions=False) as b:
        sign_in(a, "president")
        sign_in(b, "vp_medical")
        for _ in range(ROUNDS):
            res = a.post(f"{API}/incidents", json={"title": "race", "category": "medical_dispute"})
            task = res.json()["tasks"][0]["id"]
            results = _race([a, b], lambda c, task=task: c.post(f"{API}/tasks/{task}/done", json={}))
            codes = sorted(r.status_code for r in results)
            assert codes == [200, 409], [r.text for r in results]
            loser = next(r for r in results if r.status_code == 409).json()["error"]
            assert loser["code"] == "conflict" and "already done" in loser["message"]
            winner = next(r for r in results if r.status_code == 200).json()["task"]["done_by"]
            done = [e for e in svc.timeline(res.json()["incident"]["id"]) if e.kind == "task_done"]
            assert len(done) == 1 and done[0].actor == winner


def test_two_clients_review_the_same_statement(racing_app):
    """Two level-1 reviewers at once, each saying which level they saw: one review counts, the other is a 409
    (without `level` the loser would silently be judged at level 2)."""
    app, svc = racing_app
    with TestClient(app, raise_server_exceptions=False) as a, TestClient(app, raise_server_exceptions=False) as b, \
            TestClient(app, raise_server_exceptions=False) as drafter:
        sign_in(a, "info_staff")
        sign_in(b, "commentator")
        sign_in(drafter, "duty_officer")
        iid = drafter.post(f"{API}/incidents", json={"title": "race", "category": "medical_dispute"}).json()[
            "incident"]["id"]
        for _ in range(ROUNDS):
            res = drafter.post(f"{API}/incidents/{iid}/statements",
                               json={"title": "情况通报", "body": "我院已成立调查组。", "next_update": "24小时内"})
            sid = res.json()["statement"]["id"]
            results = _race([a, b], lambda c, sid=sid: c.post(f"{API}/statements/{sid}/review",
                                                                 json={"approve": True, "level": 1}))
            assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
            st = next(x for x in svc.statements(iid) if x.id == sid)
            assert len(st.reviews) == 1 and st.reviews[0]["level"] == 1
