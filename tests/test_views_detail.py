"""Read models: an incident's detail is one snapshot with overdue flags, allowed triggers and actions."""

from __future__ import annotations

from datetime import timedelta

from helpers import Cli, by, crisis_env, leader, open_incident

from crisis import views


def test_incident_detail_is_one_snapshot_with_overdue_flags_and_actions(svc, roster, clock):
    iid = open_incident(svc)
    clock.advance(timedelta(hours=3))
    detail = views.incident_detail(svc, iid)
    assert detail.incident.id == iid and detail.version == svc.incident(iid).version
    assert detail.allowed_triggers == ["report"] and detail.stage_names == ("事件监测", "Monitoring")
    monitoring = detail.tasks["monitoring"]
    assert monitoring and all(tv.overdue for tv in monitoring if tv.task.status == "open")
    assert set(detail.tasks) >= {"leadership", "monitoring", "response", "logistics"}
    assert detail.timeline[0].kind == "incident_opened"

    boss = views.incident_detail(svc, iid, principal=by(leader(roster)))
    assert "override" in boss.actions["allowed"] and "fire:report" in boss.actions["allowed"]
    assert "fire:close" in boss.actions["refused"]  # not from this stage
    assert all(tv.actions["complete"] for tv in boss.tasks["monitoring"])
    duty = views.incident_detail(svc, iid, principal=by(roster.roles["duty_officer"]))
    assert "override" in duty.actions["refused"] and "(override)" in duty.actions["refused"]["override"]


def test_show_json_comes_from_the_view(tmp_path, monkeypatch):
    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    cli = Cli(tmp_path)
    iid = cli.json("open", "--title", "t", "--category", "medical_dispute")["incident"]["id"]
    shown = cli.json("show", str(iid))
    assert shown["allowed_triggers"] == ["report"] and shown["version"] == shown["incident"]["version"]
    assert {t["overdue"] for t in shown["tasks"]} == {False} and shown["at"].endswith("Z")
