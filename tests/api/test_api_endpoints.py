"""Every endpoint once, and each error code with the one error shape."""

from __future__ import annotations

from datetime import timedelta

from apihelpers import API, error, sign_in, token


def _open(client, **kw) -> dict:
    body = {"title": "网传我院术后患者死亡", "category": "medical_dispute", "source_url": "https://weibo.example/p/1",
            "signals": {"reposts": 120}, "severity": "II", **kw}
    res = client.post(f"{API}/incidents", json=body)
    assert res.status_code == 201, res.text
    return res.json()


def test_openapi_document(anon):
    doc = anon.get(f"{API}/openapi.json").json()
    for path in ("/api/v1/incidents", "/api/v1/incidents/{incident_id}/fire", "/api/v1/signals",
                 "/api/v1/tasks/{task_id}/done", "/api/v1/statements/{statement_id}/review", "/api/v1/auth/login"):
        assert path in doc["paths"], path


def test_incident_lifecycle_through_the_api(client, svc):
    sign_in(client, "president")
    opened = _open(client)
    inc = opened["incident"]
    assert inc["stage"] == "monitoring" and inc["opened_by"] == "president"
    assert inc["opened_at"].endswith("Z") and opened["tasks"]
    iid = inc["id"]

    page = client.get(f"{API}/incidents", params={"limit": 1}).json()
    assert page["total"] == 1 and page["items"][0]["id"] == iid and page["items"][0]["next_deadline"].endswith("Z")

    for t in opened["tasks"]:
        if t["required"]:
            assert client.post(f"{API}/tasks/{t['id']}/done", json={"note": "ok"}).status_code == 200
    res = client.post(f"{API}/incidents/{iid}/fire", json={"trigger": "report"})
    assert res.status_code == 200, res.text
    assert res.json()["to"] == "reported" and "assess" in res.json()["allowed_triggers"]

    detail = client.get(f"{API}/incidents/{iid}").json()
    assert detail["incident"]["stage"] == "reported" and detail["timeline"] and detail["tasks"]
    assert client.get(f"{API}/incidents/{iid}/tasks").json()["items"]

    res = client.post(f"{API}/incidents/{iid}/signals", json={"signals": {"reposts": 1500}, "note": "rising"})
    assert res.json()["incident"]["signals"]["reposts"] == 1500

    events = client.get(f"{API}/incidents/{iid}/events").json()
    last = events["last_id"]
    assert events["items"] and client.get(f"{API}/incidents/{iid}/events", params={"since": last}).json()["items"] == []

    md = client.get(f"{API}/incidents/{iid}/report", params={"lang": "en"})
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    data = client.get(f"{API}/incidents/{iid}/report", params={"format": "json"})
    assert data.status_code == 200 and "incident" in data.json()


def test_statements_escalations_tick_playbooks(client, svc, clock, advance):
    sign_in(client, "president")
    iid = _open(client)["incident"]["id"]
    st = client.post(f"{API}/incidents/{iid}/statements",
                     json={"title": "情况通报", "body": "我院已成立调查组。", "next_update": "24小时内"})
    assert st.status_code == 201, st.text
    sid = st.json()["statement"]["id"]
    assert client.post(f"{API}/statements/{sid}/release").status_code == 409  # not approved yet
    # the API reviewer is the signed-in person: level 1 needs information staff
    res = client.post(f"{API}/statements/{sid}/review", json={"approve": True})
    assert res.status_code in (200, 403)

    advance(hours=48)
    assert client.post(f"{API}/tick").status_code == 401  # the session went idle meanwhile
    sign_in(client, "president")
    res = client.post(f"{API}/tick")
    assert res.status_code == 200, res.text
    fired = res.json()["fired"]
    assert fired
    pending = client.get(f"{API}/escalations", params={"pending": True, "limit": 500}).json()
    assert pending["total"] >= len(fired)
    esc = pending["items"][0]
    assert client.post(f"{API}/escalations/{esc['id']}/ack").status_code == 200

    assert "medical_dispute" in client.get(f"{API}/playbooks").json()["categories"]
    outline = client.get(f"{API}/playbooks/medical_dispute", params={"severity": "I"}).json()
    assert outline["severity"] == "I" and outline["tasks"] and all(st["chain"] for st in outline["stages"])
    listed = client.get(f"{API}/incidents", params={"stage": "nonesuch"}).json()
    assert listed["items"] == [] and listed["total"] == 0
    row = client.get(f"{API}/incidents", params={"final": False}).json()["items"][0]
    assert {"next_deadline", "overdue", "unacked"} <= set(row)
    me = client.get(f"{API}/auth/me").json()
    assert me["person"] == "president" and me["auth"] == "session" and "leadership_head" in me["roles"]


def test_error_codes_and_shape(client, anon, accounts, svc):
    assert error(anon.get(f"{API}/incidents"))["code"] == "unauthenticated"
    assert anon.get(f"{API}/incidents").status_code == 401
    sign_in(client, "president")
    res = client.get(f"{API}/incidents/999")
    assert res.status_code == 404 and error(res)["code"] == "not_found"
    assert client.get(f"{API}/no/such/route").status_code == 404
    res = client.post(f"{API}/incidents", json={"title": "x", "category": "medical_dispute", "signals": {"a": "b"}})
    assert res.status_code == 422 and error(res)["field"] == "signals.a"
    res = client.post(f"{API}/incidents", json={"category": "medical_dispute"})
    assert res.status_code == 422 and error(res)["field"] == "title"
    res = client.post(f"{API}/incidents", content=b"{not json", headers={"content-type": "application/json"})
    assert res.status_code == 422 and error(res)["code"] == "invalid"
    res = client.post(f"{API}/incidents", json={"title": "x", "category": "nope"})
    assert res.status_code == 422 and error(res)["field"] == "category"
    iid = _open(client)["incident"]["id"]
    res = client.post(f"{API}/incidents/{iid}/fire", json={"trigger": "close"})
    assert res.status_code == 409 and error(res)["allowed"] == ["report"]
    res = client.post(f"{API}/incidents/{iid}/fire", json={"trigger": "explode"})
    assert res.status_code == 422 and error(res)["field"] == "trigger"
    big = {"title": "x", "category": "medical_dispute", "source_url": "u" * (1024 * 1024 + 10)}
    res = client.post(f"{API}/incidents", json=big)
    assert res.status_code == 413 and error(res)["code"] == "too_large"
    assert svc.incidents() and len(svc.incidents()) == 1  # nothing changed by the refusals


def test_wrong_role_is_403_naming_the_rule(client, svc):
    sign_in(client, "president")
    iid = _open(client)["incident"]["id"]
    other = client.__class__(client.app, raise_server_exceptions=False)
    sign_in(other, "logistics_staff")
    res = other.post(f"{API}/incidents/{iid}/fire", json={"trigger": "report", "override": True, "reason": "x"})
    assert res.status_code == 403 and error(res)["code"] == "forbidden" and error(res)["rule"] == "override"
    assert svc.incident(iid).stage == "monitoring"


def test_chunked_oversized_body_is_413(client):
    sign_in(client, "president")

    def chunks():
        for _ in range(20):
            yield b"x" * (64 * 1024)

    res = client.post(f"{API}/incidents", content=chunks(), headers={"content-type": "application/json"})
    assert res.status_code == 413 and error(res)["code"] == "too_large"


def test_unexpected_error_is_a_500_without_trace(client, svc, monkeypatch):
    sign_in(client, "president")

    def boom(*a, **k):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr("crisis.views.incident_list", boom)
    res = client.get(f"{API}/incidents")
    assert res.status_code == 500 and error(res)["code"] == "internal"
    assert "secret" not in res.text and "Traceback" not in res.text


def test_token_reads_and_writes(anon, accounts):
    res = anon.get(f"{API}/incidents", headers=token(accounts, "read"))
    assert res.status_code == 200
    res = anon.post(f"{API}/incidents", json={"title": "t", "category": "medical_dispute"},
                    headers=token(accounts, "write"))
    assert res.status_code == 201 and res.json()["incident"]["opened_by"] == "duty_officer"


def test_database_busy_or_unavailable_is_503(client, svc, monkeypatch):
    from crisis.errors import Busy, Unavailable

    sign_in(client, "president")
    for exc, retry in ((Busy("database busy, try again in a moment"), "1"), (Unavailable("database gone"), None)):
        def fail(*a, exc=exc, **k):
            raise exc

        monkeypatch.setattr("crisis.views.incident_list", fail)
        res = client.get(f"{API}/incidents")
        assert res.status_code == 503 and error(res)["code"] == "unavailable"
        assert res.headers.get("Retry-After") == retry


def test_health_reports_the_scheduler(anon, svc, advance):
    from crisis.store.status import record_cycle, record_start

    res = anon.get(f"{API}/health")  # no credentials needed; no scheduler has ever run: an outage
    assert res.status_code == 503 and res.json()["scheduler"]["state"] == "never_started"
    record_start(svc.engine, svc.clock.now(), sweep_seconds=30)
    record_cycle(svc.engine, svc.clock.now(), None, cycles=1)
    res = anon.get(f"{API}/health")
    assert res.status_code == 200 and res.json()["status"] == "ok"
    assert res.json()["scheduler"]["last_cycle_at"].endswith("Z")
    advance(minutes=10)  # no cycle for far longer than the sweep: the scheduler is stale
    res = anon.get(f"{API}/health")
    assert res.status_code == 503 and res.json()["scheduler"]["state"] == "stale"


def test_oncall_and_outbox(client, svc, clock):
    sign_in(client, "duty_officer")
    now = client.get(f"{API}/oncall").json()
    assert now["primary"] in svc.roster.person_ids and now["at"].endswith("Z")
    start = clock.now() + timedelta(hours=1)
    body = {"person": "oncall_backup", "start": start.isoformat(), "until": (start + timedelta(hours=8)).isoformat(),
            "note": "swap"}
    res = client.post(f"{API}/oncall/overrides", json=body)
    assert res.status_code == 201, res.text
    later = client.get(f"{API}/oncall", params={"at": (start + timedelta(hours=2)).isoformat()}).json()
    assert later["primary"] == "oncall_backup" and later["source"] == "override"
    res = client.post(f"{API}/oncall/overrides", json={**body, "start": "2026-03-14T14:00:00"})  # no zone
    assert res.status_code == 422 and error(res)["field"] == "start"
    _open(client)
    items = client.get(f"{API}/outbox", params={"limit": 5}).json()["items"]
    assert items and {"to", "channel", "kind", "delivered_at"} <= set(items[0])


def test_stale_version_is_409_naming_what_changed(client, svc):
    sign_in(client, "president")
    opened = _open(client)
    iid, seen = opened["incident"]["id"], opened["incident"]["version"]
    assert client.post(f"{API}/incidents/{iid}/signals", json={"signals": {"reposts": 900},
                                                               "expected_version": seen}).status_code == 200
    task = opened["tasks"][0]["id"]
    for path, body in ((f"/incidents/{iid}/signals", {"signals": {"reposts": 1}}),
                       (f"/incidents/{iid}/fire", {"trigger": "report", "override": True, "reason": "x"}),
                       (f"/incidents/{iid}/regrade", {"severity": "I", "reason": "x"}),
                       (f"/tasks/{task}/done", {}),
                       (f"/incidents/{iid}/statements", {"title": "t", "body": "b"})):
        res = client.post(f"{API}{path}", json={**body, "expected_version": seen})
        assert res.status_code == 409, (path, res.text)
        err = error(res)
        assert err["code"] == "conflict" and any("signals_updated by president" in c for c in err["changes"])
    inc = svc.incident(iid)
    assert inc.version == seen + 1 and inc.signals["reposts"] == 900 and inc.stage == "monitoring"
    assert svc.statements(iid) == [] and all(t.status == "open" for t in svc.tasks(iid) if t.id == task)


def test_my_work_and_events_since(client, svc, advance):
    sign_in(client, "president")
    opened = _open(client)
    iid, who = opened["incident"]["id"], opened["tasks"][0]["assignee"]
    sign_in(client, who)
    mine = client.get(f"{API}/me/work").json()
    assert mine["person"] == who
    assert mine["tasks"] and all(t["assignee"] == who and t["status"] == "open" for t in mine["tasks"])
    first = client.get(f"{API}/events", params={"since": 0}).json()
    assert any(e["kind"] == "incident_opened" and e["incident_id"] == iid for e in first["items"])
    assert any(e["kind"] == "login" and e["data"]["auth"] == "password" for e in first["items"])  # audited
    last = first["last_id"]
    assert client.get(f"{API}/events", params={"since": last}).json() == {"items": [], "last_id": last}
    client.post(f"{API}/incidents/{iid}/signals", json={"signals": {"reposts": 5}})
    new = client.get(f"{API}/events", params={"since": last}).json()
    assert [e["kind"] for e in new["items"]] == ["signals_updated"] and new["last_id"] > last
    advance(hours=48)
    svc.tick()
    sign_in(client, who)
    paged = client.get(f"{API}/me/work").json()["escalations"]
    assert paged and all(e["recipient"] == who for e in paged)
