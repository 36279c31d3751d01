"""Each who-may rule of crisis.engine.policy through the API: the wrong person gets 403 naming the rule and
changes nothing; the right one succeeds. Callers authenticate with bearer tokens (write scope)."""

from __future__ import annotations

import pytest
from apihelpers import API, error, token
from helpers import drive_to, finish_stage, open_incident, stage_tasks


@pytest.fixture()
def call(anon, accounts):
    """call(person, "post", path, json=...) → response, with a write token acting as `person`."""
    tokens: dict[str, dict[str, str]] = {}

    def _call(person: str, method: str, path: str, **kw):
        if person not in tokens:
            tokens[person] = token(accounts, "write", person=person)
        return getattr(anon, method)(f"{API}{path}", headers=tokens[person], **kw)

    return _call


def refused(res, rule: str) -> None:
    assert res.status_code == 403, res.text
    err = error(res)
    assert err["code"] == "forbidden" and err["rule"] == rule, err
    assert rule in err["message"]


def test_complete(call, svc):
    iid = open_incident(svc)
    task = next(t for t in stage_tasks(svc, iid) if t.group == "monitoring")
    refused(call("logistics_staff", "post", f"/tasks/{task.id}/done", json={}), "complete")
    assert svc.tasks(iid)[0].status == "open"
    assert call("info_staff", "post", f"/tasks/{task.id}/done", json={}).status_code == 200


def test_assess_override_regrade(call, svc):
    iid = open_incident(svc)
    refused(call("duty_officer", "post", f"/incidents/{iid}/fire",
                 json={"trigger": "report", "override": True, "reason": "urgent"}), "override")
    finish_stage(svc, iid)
    assert call("duty_officer", "post", f"/incidents/{iid}/fire", json={"trigger": "report"}).status_code == 200
    finish_stage(svc, iid)
    version = svc.incident(iid).version
    refused(call("duty_officer", "post", f"/incidents/{iid}/fire",
                 json={"trigger": "assess", "decision": "activate"}), "assess")
    refused(call("duty_officer", "post", f"/incidents/{iid}/regrade", json={"severity": "I", "reason": "x"}),
            "regrade")
    assert svc.incident(iid).version == version and svc.incident(iid).severity == "II"
    res = call("president", "post", f"/incidents/{iid}/regrade", json={"severity": "I", "reason": "spreading"})
    assert res.status_code == 200 and res.json()["incident"]["severity"] == "I"
    res = call("president", "post", f"/incidents/{iid}/fire", json={"trigger": "assess", "decision": "activate"})
    assert res.status_code == 200 and res.json()["to"] == "assessing"


def test_close_and_reopen(call, svc):
    iid = open_incident(svc)
    drive_to(svc, iid, "follow_up")
    finish_stage(svc, iid)
    refused(call("finance", "post", f"/incidents/{iid}/fire", json={"trigger": "close"}), "close")
    assert svc.incident(iid).stage == "follow_up"
    assert call("duty_officer", "post", f"/incidents/{iid}/fire", json={"trigger": "close"}).status_code == 200
    refused(call("finance", "post", f"/incidents/{iid}/fire", json={"trigger": "reopen"}), "reopen")
    assert svc.incident(iid).stage == "closed"
    res = call("commentator", "post", f"/incidents/{iid}/fire", json={"trigger": "reopen"})
    assert res.status_code == 200 and res.json()["to"] == "reported"


def test_ack(call, svc, advance):
    iid = open_incident(svc)
    advance(hours=48)
    svc.tick()
    esc = next(e for e in svc.escalations(iid) if e.recipient != "finance")
    refused(call("finance", "post", f"/escalations/{esc.id}/ack"), "ack")
    assert all(e.acked_at is None for e in svc.escalations(iid))
    assert call("oncall_admin", "post", f"/escalations/{esc.id}/ack").status_code == 200


def test_applicable(call, svc):
    iid = open_incident(svc)
    task = next(t for t in stage_tasks(svc, iid) if not t.required)
    refused(call("finance", "post", f"/tasks/{task.id}/applicable", json={"reason": "leak"}), "applicable")
    res = call(svc.roster.group_head(task.group), "post", f"/tasks/{task.id}/applicable", json={"reason": "leak"})
    assert res.status_code == 200 and res.json()["task"]["required"] is True


def test_three_level_review_and_release(call, svc):
    iid = open_incident(svc, severity="I")
    res = call("duty_officer", "post", f"/incidents/{iid}/statements",
               json={"title": "情况通报", "body": "我院已成立调查组。", "next_update": "24小时内"})
    assert res.status_code == 201, res.text
    sid = res.json()["statement"]["id"]
    approve = {"approve": True}

    def reviews() -> int:
        return len(next(s for s in svc.statements(iid) if s.id == sid).reviews)

    refused(call("president", "post", f"/statements/{sid}/review", json=approve), "review.1")
    assert reviews() == 0
    assert call("info_staff", "post", f"/statements/{sid}/review", json=approve).status_code == 200
    refused(call("commentator", "post", f"/statements/{sid}/review", json=approve), "review.2")
    assert call("vp_medical", "post", f"/statements/{sid}/review", json=approve).status_code == 200
    refused(call("vp_medical", "post", f"/statements/{sid}/review", json=approve), "review.once")
    refused(call("info_staff", "post", f"/statements/{sid}/review", json=approve), "review.3")
    assert reviews() == 2
    res = call("president", "post", f"/statements/{sid}/review", json=approve)
    assert res.status_code == 200 and res.json()["statement"]["status"] == "approved"
    refused(call("finance", "post", f"/statements/{sid}/release"), "release")
    res = call("duty_officer", "post", f"/statements/{sid}/release")
    assert res.status_code == 200 and res.json()["statement"]["status"] == "released"



def test_four_eyes_and_personal_data_release_override(call, svc):
    iid = open_incident(svc, severity="III")  # minor: two levels
    res = call("info_staff", "post", f"/incidents/{iid}/statements",
               json={"title": "情况通报", "body": "家属电话13812345678", "next_update": "24小时内"})
    assert res.status_code == 201 and res.json()["warnings"] == [
        "personal data: mobile phone number (remove or mask before release)"]
    sid = res.json()["statement"]["id"]
    refused(call("info_staff", "post", f"/statements/{sid}/review", json={"approve": True}), "review.four_eyes")
    assert call("liaison", "post", f"/statements/{sid}/review", json={"approve": True}).status_code == 200
    res = call("info_head", "post", f"/statements/{sid}/review", json={"approve": True})
    assert res.status_code == 200 and res.json()["statement"]["status"] == "approved"
    res = call("president", "post", f"/statements/{sid}/release")
    assert res.status_code == 409 and "personal data" in error(res)["message"]
    refused(call("info_staff", "post", f"/statements/{sid}/release", json={"override": True, "reason": "同意"}),
            "release.personal_data")
    res = call("president", "post", f"/statements/{sid}/release", json={"override": True, "reason": "家属书面同意"})
    assert res.status_code == 200 and res.json()["statement"]["status"] == "released"
