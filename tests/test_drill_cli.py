"""`crisis drill run`, the README's main job, from the command line: instant and paced replays, JSON, the
reports folder and the drill database, and the default locations under the project folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DRILLS_DIR, ROOT, Cli, crisis_env

SCENARIO = DRILLS_DIR / "medical-dispute-viral.yaml"
REPORTS = {"incident_report.zh-CN.md", "incident_report.en.md", "after_action.zh-CN.md", "after_action.en.md",
           "scorecard.zh-CN.md", "scorecard.en.md", "scorecard.json", "notifications.jsonl", "audit.log"}


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name, value in crisis_env(tmp_path, db=False).items():
        monkeypatch.setenv(name, value)
    return Cli(tmp_path)


def test_drill_run_json_writes_reports_and_its_own_database(cli, tmp_path):
    out, db = tmp_path / "out", tmp_path / "drill.db"
    card = cli.json("drill", "run", str(SCENARIO), "--out", str(out), "--db", f"sqlite:///{db}")
    assert card["run"]["mode"] == "instant" and card["run"]["reports_dir"] == str(out)
    assert card["scenario"]["name"] == "medical-dispute-viral" and card["scenario"]["duration_seconds"] == 72 * 3600
    m = card["metrics"]
    assert m["final_stage"] == "follow_up" and m["time_to_report_seconds"] == 26 * 60
    assert m["escalations_fired"] > 0 and m["rejected_actions"] == 0
    assert {e["status"] for e in card["expectations"]} <= {"SUCCESS", "PARTIAL", "FAILURE"}
    assert {p.name for p in out.iterdir()} >= REPORTS
    assert json.loads((out / "scorecard.json").read_text("utf-8"))["metrics"] == m
    sent = [json.loads(x) for x in (out / "notifications.jsonl").read_text("utf-8").splitlines()]
    assert len({n["key"] for n in sent}) == len(sent) > 0  # every notification once
    with sqlite3.connect(db) as conn:  # the replay ran on the drill's database, not the live one
        assert conn.execute("SELECT count(*) FROM incident").fetchone() == (1,)
    assert not (tmp_path / "crisis.db").exists()


def test_drill_run_prints_timeline_and_scorecard(cli, tmp_path):
    result = cli("drill", "run", str(SCENARIO), "--out", str(tmp_path / "out"), "--db",
                 f"sqlite:///{tmp_path / 'd.db'}")
    text = result.output
    for needle in ("Timeline", "Tasks", "Expectations", "time to report 26m", "final stage follow_up",
                   "reports written to"):
        assert needle in text, needle
    assert str(tmp_path / "out" / "scorecard.json") in text


def test_drill_run_of_many_incidents_prints_one_line_each_and_where_the_full_records_are(cli, tmp_path):
    out = tmp_path / "out"
    text = cli("drill", "run", *[str(SCENARIO)] * 4, "--out", str(out), "--db", f"sqlite:///{tmp_path / 'd.db'}").output
    lines = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert len(lines) == 4 and "Timeline" not in text and "Tasks" not in text
    card = json.loads((out / "medical-dispute-viral-2" / "scorecard.json").read_text("utf-8"))
    m = card["metrics"]
    assert lines[1] == (f"#2 {card['incident']['title']} · medical_dispute · grade {card['incident']['severity']} · "
                        f"final stage {m['final_stage']} · tasks on time {m['tasks_on_time']}, late {m['tasks_late']}, "
                        f"missed {m['tasks_missed']}, open {m['tasks_open']} · escalations {m['escalations_fired']} · "
                        "medical-dispute-viral-2/")
    assert "## Timeline" in (out / "medical-dispute-viral-2" / "after_action.en.md").read_text("utf-8")
    where = f"4 incidents: full timelines, task tables, scorecards and reports written to {out}"
    assert where in " ".join(text.split())
    few = cli("drill", "run", *[str(SCENARIO)] * 3, "--out", str(tmp_path / "o3"), "--db",
              f"sqlite:///{tmp_path / 'd3.db'}").output
    assert few.count("Timeline") == 3 and few.count("reports written to") == 3 and "incidents: full" not in few


def test_drill_run_paced_shows_events_as_they_happen(cli, tmp_path):
    result = cli("drill", "run", str(SCENARIO), "--speed", "1e7", "--out", str(tmp_path / "out"), "--db",
                 f"sqlite:///{tmp_path / 'd.db'}")
    live = [ln for ln in result.output.splitlines() if ln.startswith("T+")]
    assert live and "inject" in result.output and "escalation L1" in result.output
    assert json.loads((tmp_path / "out" / "scorecard.json").read_text("utf-8"))["run"]["mode"] == "speed"


def test_drill_run_default_locations(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CRISIS_HOME", str(tmp_path))
    card = cli.json("drill", "run", str(SCENARIO))
    run_id = card["run"]["id"]
    assert card["run"]["reports_dir"] == str(tmp_path / "reports" / "drills" / run_id)
    assert (tmp_path / "reports" / "drills" / run_id / "scorecard.json").exists()
    # replayed in memory, then written once: a WAL file like any crisis database, holding the whole drill
    db = sqlite3.connect(tmp_path / "store" / "drills" / f"{run_id}.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT count(*) FROM escalation").fetchone() == (card["metrics"]["escalations_fired"],)
    assert db.execute("SELECT count(*) FROM outboxmessage WHERE delivered_at IS NULL").fetchone() == (0,)
    db.close()


def test_drill_run_as_a_process(tmp_path):
    """The installed entry point, as `python3 dev.py drill` runs it."""
    env = {**os.environ, **crisis_env(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "crisis", "drill", "run", str(SCENARIO), "--json", "--out",
                           str(tmp_path / "out"), "--db", f"sqlite:///{tmp_path / 'd.db'}"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metrics"]["final_stage"] == "follow_up"
    bad = subprocess.run([sys.executable, "-m", "crisis", "drill", "run", str(tmp_path / "missing.yaml")], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "file not found" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_drills_own_database_does_not_wait_for_the_disk_a_given_one_does(tmp_path):
    from crisis.drill.cli import drill_engine

    instant = drill_engine(f"sqlite:///{tmp_path / 'instant.db'}", scratch=True)
    own = drill_engine(f"sqlite:///{tmp_path / 'own.db'}", scratch=True, paced=True)
    given = drill_engine(f"sqlite:///{tmp_path / 'given.db'}", scratch=False)
    assert instant.url.database in (None, "", ":memory:") and not (tmp_path / "instant.db").exists()
    with own.connect() as conn:  # 0 = OFF; still WAL, so a reader never blocks the replay
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 0
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    with given.connect() as conn:  # 1 = NORMAL, the engine's usual setting
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
