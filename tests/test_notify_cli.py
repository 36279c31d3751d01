"""`crisis notify test`, `crisis oncall show|override|import` and `crisis outbox` end to end."""

from __future__ import annotations

import chatservers as cs
import pytest
import yaml
from helpers import ROSTER_PATH, Cli, crisis_env

from crisis.roster import load_roster


@pytest.fixture()
def platforms():
    with cs.running() as state:
        yield state


@pytest.fixture()
def cli(tmp_path, monkeypatch, platforms):
    data = load_roster(ROSTER_PATH).model_dump(by_alias=True, mode="json")
    data["rota"] = {"people": ["oncall_admin", "oncall_backup"], "handover": "08:00:00", "start": "2026-03-01"}
    for p in data["people"]:
        if p["id"] == "liaison":
            p.update(channels=["webhook", "wecom", "dingtalk"], language="en",
                     contacts={"phone": "13800000000", "wecom_userid": "zhou"})
    roster = tmp_path / "roster.yaml"
    roster.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    env = {**crisis_env(tmp_path), "CRISIS_ROSTER": str(roster), "CRISIS_TZ": "Asia/Shanghai",
           "CRISIS_WEBHOOK_URL": f"{platforms.url}/webhook", "CRISIS_WEBHOOK_SECRET": cs.HOOK_SECRET,
           "CRISIS_WECOM_URL": f"{platforms.url}/wecom?key={cs.WECOM_KEY}",
           "CRISIS_DINGTALK_URL": f"{platforms.url}/dingtalk?access_token={cs.DING_TOKEN}",
           "CRISIS_DINGTALK_SECRET": "not-the-secret", "CRISIS_NOTIFY_TIMEOUT": "2"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CRISIS_USER", raising=False)
    return Cli(tmp_path)


def test_notify_test_reports_what_each_channel_said(cli, platforms):
    got = cli.json("notify", "test", "liaison", code=1)  # one channel refused: exit status 1
    assert [(r["channel"], r["ok"]) for r in got] == [("webhook", True), ("wecom", True), ("dingtalk", False)]
    assert "310000" in got[2]["said"]  # DingTalk's answer to a bad signature, with HTTP 200
    assert platforms.of("webhook")[0].body["subject"] == "[crisis] Test message"  # in the person's language
    assert platforms.of("wecom")[0].body["markdown"]["content"].endswith("<@zhou>")
    assert "no channels" in cli("notify", "test", "president", code=2).output


def test_oncall_show_handover_override_and_import(cli, tmp_path):
    before = cli.json("oncall", "show", "--at", "2026-03-14 07:59")
    after = cli.json("oncall", "show", "--at", "2026-03-14 08:00")
    assert (before["primary"], after["primary"], after["backup"]) == ("oncall_admin", "oncall_backup", "oncall_admin")
    cli("oncall", "override", "president", "--from", "2026-03-14 12:00", "--until", "2026-03-14 18:00",
        "--note", "holiday cover", "--by", "president")
    cover = cli.json("oncall", "show", "--at", "2026-03-14 13:00")
    assert (cover["primary"], cover["backup"], cover["source"]) == ("president", "oncall_backup", "override")
    assert "unknown person" in cli("oncall", "override", "nobody", "--from", "2026-03-14 12:00", "--until",
                                   "2026-03-14 13:00", "--by", "president", code=2).output
    refused = cli("oncall", "override", "liaison", "--from", "2026-03-15 12:00", "--until", "2026-03-15 13:00",
                  "--by", "liaison", code=2)
    assert "on-call rota" in refused.output
    csv = tmp_path / "shifts.csv"
    csv.write_text("person,start,end\n谢值班,2026-03-20 08:00,2026-03-21 08:00\n", "utf-8")
    assert cli.json("oncall", "import", str(csv), "--by", "duty_officer") == {"imported": 1}
    assert cli.json("oncall", "show", "--at", "2026-03-20 09:00")["source"] == "import"


def test_outbox_lists_and_filters(cli):
    cli("open", "--title", "家属投诉", "--category", "medical_dispute", "--severity", "II")
    rows = cli.json("outbox")
    assert rows and all(r["delivered_at"] for r in rows) and {r["kind"] for r in rows} == {"task_assigned"}
    assert cli.json("outbox", "--failed") == []
    assert "delivered" in cli("outbox").output
