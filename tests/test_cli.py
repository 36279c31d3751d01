"""The duty-officer CLI end to end (typer's runner, a temp database, --json output)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import PLAYBOOKS_DIR, crisis_env
from typer.testing import CliRunner

from crisis import cli
from crisis.cli import common


@pytest.fixture()
def crisis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_db: Path):
    shutil.copyfile(migrated_db, tmp_path / "crisis.db")  # what `crisis db init` makes (tested in test_migrations)
    pb = tmp_path / "playbooks"
    pb.mkdir()
    (pb / "medical_dispute.yaml").write_text((PLAYBOOKS_DIR / "medical_dispute.yaml").read_text("utf-8"), "utf-8")
    for name, value in crisis_env(tmp_path, pb).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CRISIS_USER", raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        common._state.clear()
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == code, result.output
        return result

    def data(*args: str, code: int = 0):
        return json.loads(invoke(*args, "--json", code=code).stdout)

    invoke.json = data  # type: ignore[attr-defined]
    invoke.tmp = tmp_path  # type: ignore[attr-defined]
    return invoke


def test_open_list_show_fire_done_ack(crisis):
    opened = crisis.json("open", "--title", "网传候诊5小时", "--category", "medical_dispute", "--signal", "reposts=120",
                         "--signal", "views=15000", "--source-url", "https://x.example/1")
    inc = opened["incident"]
    assert inc["stage"] == "monitoring" and inc["severity"] == "II"
    assert inc["signals"] == {"reposts": 120, "views": 15000} and inc["opened_by"] == "duty_officer"
    assert [t["key"] for t in opened["tasks"]] == ["compile_report", "preserve_evidence"]

    listed = crisis.json("list")
    assert [(i["id"], i["stage"]) for i in listed] == [(inc["id"], "monitoring")]
    assert listed[0]["next_deadline"] == opened["tasks"][0]["due_at"]

    err = crisis.json("fire", str(inc["id"]), "assess", "--decision", "activate", "--by", "president",
                      code=2)["error"]  # the API's error body: same code, the allowed triggers listed
    assert err["code"] == "conflict" and err["allowed"] == ["report"] and "allowed: report" in err["message"]
    err = crisis.json("fire", str(inc["id"]), "report", code=2)["error"]
    assert err["code"] == "conflict" and "allowed" not in err and "compile_report" in err["message"]

    task_id = opened["tasks"][0]["id"]
    done = crisis.json("task", "done", str(task_id), "--by", "publicity_head")
    assert done["status"] == "done" and done["done_by"] == "publicity_head"
    moved = crisis.json("fire", str(inc["id"]), "report")
    assert (moved["from"], moved["to"], moved["allowed_triggers"]) == ("monitoring", "reported", ["assess"])

    shown = crisis.json("show", str(inc["id"]))
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds[0] == "incident_opened" and "task_done" in kinds and kinds.count("stage_changed") == 1
    assert {t["key"] for t in shown["tasks"] if t["status"] == "open"} == {"assess_severity", "verify_facts"}

    # task-assignment notifications reached the file channel once each
    lines = [json.loads(x) for x in (crisis.tmp / "notifications.jsonl").read_text("utf-8").splitlines()]
    keys = [x["key"] for x in lines]
    assert len(keys) == len(set(keys)) and f"task:{task_id}:assigned:file" in keys

    err = crisis.json("ack", "99", "--by", "oncall_admin", code=2)["error"]
    assert err["code"] == "not_found"


def test_bad_arguments_change_nothing(crisis):
    crisis("open", "--title", "x", "--category", "nope", code=2)
    crisis("open", "--title", "x", "--category", "medical_dispute", "--signal", "reposts=lots", code=2)
    crisis("open", "--title", "x", "--category", "medical_dispute", "--severity", "V", code=2)
    crisis("open", "--title", "x", "--category", "medical_dispute", "--by", "stranger", code=2)
    assert crisis.json("list", "--all") == []


def test_playbook_validate_reports_location(crisis, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((PLAYBOOKS_DIR / "medical_dispute.yaml").read_text("utf-8")
                   .replace("group: logistics", "group: logstics", 1), "utf-8")
    result = crisis("playbook", "validate", str(bad), code=2)
    line = next(i for i, t in enumerate(bad.read_text("utf-8").splitlines(), 1) if "logstics" in t)
    assert f"bad.yaml:{line}:" in result.output and "unknown group 'logstics'" in result.output


def test_report_markdown_json_and_bad_kind(crisis):
    inc = crisis.json("open", "--title", "网传候诊5小时", "--category", "medical_dispute")["incident"]
    md = crisis("report", str(inc["id"]), "--lang", "en", "--tz", "UTC").stdout
    assert md.startswith("# Incident report") and "| Incident | 网传候诊5小时 |" in md
    data = crisis.json("report", str(inc["id"]))
    assert data["incident"]["id"] == inc["id"] and data["tz"] == "Asia/Shanghai"
    assert [t["key"] for t in data["open_tasks"]] == ["compile_report", "preserve_evidence"]
    written = crisis.json("report", str(inc["id"]), "--out", str(crisis.tmp / "r"))["written"]
    assert sorted(p.rsplit("/", 1)[1] for p in written) == [
        "after_action.en.md", "after_action.zh-CN.md", "incident_report.en.md", "incident_report.zh-CN.md",
        "scorecard.json"]
    printed = crisis("report", str(inc["id"]), "--json").stdout  # the same text, times in Z (but the issue time)
    issued = re.compile(r'"(issued_at|due)": "[^"]*"')  # the issue time, and what is due from it
    assert issued.sub("", printed) == issued.sub("", (crisis.tmp / "r" / "scorecard.json").read_text("utf-8"))
    assert '"opened_at": "20' in printed and '+00:00"' not in printed
    err = crisis.json("report", str(inc["id"]), "--kind", "minutes", code=2)
    assert "unknown report 'minutes'" in err["error"]["message"]
    crisis("report", str(inc["id"]), "--tz", "Mars/Olympus", code=2)
    crisis("report", "999", code=2)


def test_built_in_actors_cannot_be_named(crisis):
    inc = crisis.json("open", "--title", "t", "--category", "medical_dispute")["incident"]
    for name in ("drill", "system", "ghost"):
        err = crisis.json("task", "done", "1", "--by", name, code=2)["error"]
        assert err["code"] == "forbidden" and "unknown person" in err["message"]
    assert crisis.json("show", str(inc["id"]))["tasks"][0]["status"] == "open"
