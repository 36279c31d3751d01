"""The three new playbooks' drills (examples/drills/), their scorecards asserted field by field against values worked
out by hand from the playbooks; a surge of several incidents in one scenario; several scenario files on one clock."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from helpers import DRILLS_DIR, PLAYBOOKS_DIR, ROSTER_PATH
from test_cli import crisis  # noqa: F401  (the CLI fixture)

from crisis.drill.runner import run_drill, run_drills
from crisis.drill.scenario import load_scenario
from crisis.errors import InputError
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.store.db import make_engine

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def replay(tmp_path, name: str):
    loaded = load_scenario(DRILLS_DIR / f"{name}.yaml")
    r = run_drill(loaded, engine=make_engine(f"sqlite:///{tmp_path / 'd.db'}"),
                  playbooks=load_playbooks(PLAYBOOKS_DIR), roster=load_roster(loaded.roster_path()))
    start = loaded.scenario.start

    def t(delta: timedelta) -> str:
        return (start + delta).astimezone(UTC).isoformat()

    return r, r.scorecard, t


def rows(card, *fields):
    return {x["key"]: tuple(x[f] for f in fields) for x in card["tasks"]}


def expectations(card):
    return [(e["kind"], e["value_seconds"], e["within_seconds"], e["status"]) for e in card["expectations"]]


def test_violence_night_drill(tmp_path):
    r, card, t = replay(tmp_path, "violence-night-er")
    assert (r.steps_applied, r.steps_rejected) == (29, 0)
    tasks = rows(card, "stage", "status", "outcome", "due_at", "done_at", "late_seconds", "escalations")
    # on-site work from the first stage (grade II at opening: 5 min, 5 min, 10 min; the video 1 h → 30 min at I)
    assert tasks["call_police"] == ("monitoring", "done", "on_time", t(5 * M), t(2 * M), 0.0, 0)
    assert tasks["secure_scene"] == ("monitoring", "done", "on_time", t(5 * M), t(4 * M), 0.0, 0)
    assert tasks["treat_injured"] == ("monitoring", "done", "on_time", t(10 * M), t(8 * M), 0.0, 0)
    # carried into `reported` at +13m, regraded to I at +26m (30 min from the opening), done 20 min late
    assert tasks["preserve_video"] == ("monitoring", "done", "late", t(30 * M), t(50 * M), 1200.0, 4)
    assert tasks["capture_posts"] == ("monitoring", "cancelled", "skipped", t(30 * M), None, None, 0)
    # carried from `reported` (entered +13m, grade I: 2 h)
    assert tasks["witness_statements"] == ("reported", "done", "on_time", t(2 * H + 13 * M), t(2 * H + 5 * M), 0.0, 0)
    assert tasks["report_health_authority"][3:5] == (t(6 * H), t(75 * M))
    # conditional (not a care dispute here): never chased, never marked applicable, still open
    assert tasks["seal_records"] == ("assessing", "open", "open", t(6 * H), None, None, 0)
    assert tasks["release_statement"][2:5] == ("on_time", t(5 * H), t(155 * M))
    assert tasks["file_work_injury"][3:5] == (t(30 * D), t(20 * H))
    assert tasks["track_opinion"][2:5] == ("on_time", t(30 * H), t(30 * H))
    carried = [(e["data"]["key"], e["data"]["to_stage"]) for e in card["timeline"] if e["kind"] == "task_carried"]
    assert carried == [("preserve_video", "reported"), ("preserve_video", "assessing"),
                       ("witness_statements", "assessing"), ("witness_statements", "responding"),
                       ("seal_records", "responding"), ("seal_records", "media_liaison"), ("seal_records", "onsite"),
                       ("seal_records", "follow_up")]
    # the chain: grade I waits 5 min; level 4 goes to tonight's on-call administrator, not the day one
    assert [(e["task"], e["level"], e["target"], e["recipient"], e["fired_at"], e["acked_by"])
            for e in card["escalations"]] == [
        ("preserve_video", 1, "assignee", "security_head", t(30 * M), None),
        ("preserve_video", 2, "group_head", "admin_director", t(35 * M), None),
        ("preserve_video", 3, "leadership_head", "president", t(40 * M), None),
        ("preserve_video", 4, "on_call", "oncall_backup", t(45 * M), "oncall_backup")]
    assert expectations(card) == [
        ("task", 120.0, 300.0, "SUCCESS"), ("task", 480.0, 600.0, "SUCCESS"),
        ("paged", 2700.0, 3600.0, "SUCCESS"), ("no_page_at_level", None, None, "SUCCESS"),
        ("answered", 1020.0, 1200.0, "SUCCESS"), ("metric", 9000.0, 18000.0, "SUCCESS")]
    m = card["metrics"]
    assert (m["time_to_report_seconds"], m["time_to_assessment_seconds"], m["time_to_first_statement_seconds"]) \
        == (780.0, 1560.0, 9000.0)
    assert (m["tasks_total"], m["tasks_done"], m["tasks_on_time"], m["tasks_late"], m["tasks_open"],
            m["tasks_skipped"]) == (25, 20, 19, 1, 4, 1)
    assert (m["escalations_fired"], m["escalation_chains"], m["chains_answered"], m["chains_reached_on_call"],
            m["median_answer_seconds"]) == (4, 1, 1, 1, 1020.0)
    assert (m["final_stage"], m["severity"], m["expectation_score"]) == ("follow_up", "I", 100.0)


def test_privacy_leak_drill(tmp_path):
    r, card, t = replay(tmp_path, "privacy-leak-screenshot")
    assert (r.steps_applied, r.steps_rejected) == (27, 0)
    tasks = rows(card, "status", "outcome", "due_at", "done_at", "late_seconds", "escalations", "required")
    assert tasks["seal_records"] == ("done", "on_time", t(1 * H), t(50 * M), 0.0, 0, True)
    # regraded III → II at +1h35m: open tasks follow the new grade
    assert tasks["takedown_notices"][2:4] == (t(2 * H + 5 * M), t(2 * H))          # III 2h → II 1h after +1h05m
    assert tasks["suspend_staff"][2:4] == (t(5 * H + 5 * M), t(4 * H))              # III 8h → II 4h
    assert tasks["report_authorities"] == ("done", "on_time", t(4 * H), t(3 * H + 30 * M), 0.0, 0, True)
    assert tasks["notify_individuals"] == ("done", "on_time", t(12 * H), t(9 * H), 0.0, 0, True)
    # marked applicable: optional in the playbook, required for this incident
    assert tasks["report_police"] == ("done", "on_time", t(24 * H), t(3 * H), 0.0, 0, True)
    assert tasks["issue_instructions"][2:4] == (t(2 * H + 5 * M), t(80 * M))        # done before the regrade
    assert tasks["release_statement"] == ("done", "late", t(5 * H), t(5 * H + 15 * M), 900.0, 2, True)
    regrade = next(e for e in card["timeline"] if e["kind"] == "severity_changed")
    assert (regrade["data"]["from"], regrade["data"]["to"], regrade["actor"]) == ("III", "II", "president")
    assert next(e for e in card["timeline"] if e["kind"] == "task_applicable")["data"]["key"] == "report_police"
    # the first draft is sent back at level 2 with the reviewer's comment; the second is released
    assert [(s["status"], [(x["level"], x["by"], x["approve"], x["comment"]) for x in s["reviews"]])
            for s in card["statements"]] == [
        ("rejected", [(1, "info_staff", True, None),
                      (2, "info_head", False, "不得复述泄露内容中的患者信息，删去病区与诊断")]),
        ("released", [(1, "info_staff", True, None), (2, "info_head", True, None), (3, "president", True, None)])]
    # the spokesperson is the monitoring head: level 2 goes on to leadership, one wait (II: 10 min) later
    assert [(e["task"], e["level"], e["recipient"], e["fired_at"]) for e in card["escalations"]] == [
        ("release_statement", 1, "publicity_head", t(5 * H)), ("release_statement", 2, "president", t(5 * H + 10 * M))]
    assert expectations(card) == [
        ("task", 3000.0, 3600.0, "SUCCESS"), ("task", 12600.0, 14400.0, "SUCCESS"),
        ("task", 32400.0, 43200.0, "SUCCESS"), ("metric", 18600.0, 18000.0, "PARTIAL"),
        ("paged", 18000.0, 18000.0, "SUCCESS"), ("no_page_at_level", None, None, "SUCCESS")]
    m = card["metrics"]
    assert (m["tasks_total"], m["tasks_done"], m["tasks_on_time"], m["tasks_late"], m["tasks_open"]) \
        == (22, 17, 16, 1, 5)
    assert (m["statements_released"], m["chains_answered"], m["median_answer_seconds"]) == (1, 1, 900.0)
    assert (m["final_stage"], m["severity"], m["expectation_score"]) == ("follow_up", "II", 91.7)


def test_staff_conduct_reopen_drill(tmp_path):
    r, card, t = replay(tmp_path, "staff-conduct-red-envelope")
    assert (r.steps_applied, r.steps_rejected) == (33, 0)
    assert card["incident"]["cycle"] == 2
    by_cycle = {(x["cycle"], x["key"]): (x["status"], x["outcome"], x["due_at"], x["done_at"], x["late_seconds"])
                for x in card["tasks"]}
    reopen = 72 * H + 10 * M
    assert by_cycle[(1, "watch_trend")] == ("done", "on_time", t(14 * H + 5 * M), t(12 * H), 0.0)
    # the reopened cycle's clocks run from the reopen, not from the first post three days earlier
    assert by_cycle[(2, "assess_severity")] == ("done", "late", t(reopen + 2 * H), t(74 * H + 40 * M), 1800.0)
    assert by_cycle[(2, "release_statement")][2:4] == (t(reopen + 12 * H), t(79 * H + 5 * M))
    assert by_cycle[(2, "complaint_feedback")][:4] == ("done", "on_time", t(reopen + 7 * D), t(100 * H))
    # marked applicable by the response group's head, then done
    assert by_cycle[(2, "check_handin")][:2] == ("done", "on_time")
    # the sanctions come due from the (second cycle's) assessment at +74h50m: grade II 10 and 14 days
    assert by_cycle[(2, "disciplinary_decision")][2] == t(74 * H + 50 * M + 10 * D)
    assert by_cycle[(2, "publish_outcome")][2] == t(74 * H + 50 * M + 14 * D)
    assert by_cycle[(2, "suspend_staff")][:4] == ("done", "on_time", t(74 * H + 50 * M + 4 * H), t(76 * H))
    # the president is assignee, group head and leadership head: the chain's next level is on call, which
    # the completion at +74h40m pre-empts
    assert [(e["task"], e["level"], e["recipient"], e["fired_at"]) for e in card["escalations"]] == [
        ("assess_severity", 1, "president", t(reopen + 2 * H))]
    assert [c["answer"] for c in card["chains"]] == ["completed"]
    assert expectations(card) == [
        ("metric", 9600.0, 7200.0, "PARTIAL"), ("metric", 24600.0, 43200.0, "SUCCESS"),
        ("task", 13800.0, 14400.0, "SUCCESS"), ("answered", 1800.0, 1200.0, "PARTIAL"),
        ("no_page_at_level", None, None, "SUCCESS")]
    m = card["metrics"]
    assert m["time_to_assessment_seconds"] == 7500.0  # the first assessment (watch), from the first post
    assert (m["tasks_total"], m["tasks_done"], m["tasks_late"], m["tasks_open"]) == (27, 21, 1, 6)
    assert (m["final_stage"], m["severity"], m["expectation_score"]) == ("follow_up", "II", 80.0)


SURGE = """
name: surge
title: {zh: 多起事件并发, en: A surge}
start: 2026-03-14T21:00:00+08:00
duration: 3h
roster: ROSTER
incidents:
  dispute: {title: 网传术后死亡, category: medical_dispute, severity: II, opened_by: duty_officer}
  violence: {at: 20m, title: 急诊科医生被打, category: workplace_violence, severity: II, opened_by: duty_officer}
steps:
  - {at: 10m, incident: dispute, do: complete, task: compile_report, by: publicity_head}
  - {at: 22m, incident: violence, do: complete, task: call_police, by: security_head}
  - {at: 24m, incident: violence, do: complete, task: secure_scene, by: security_head}
expect:
  - {name: police, incident: violence, task: call_police, within: 5m}
  - {name: report, incident: dispute, task: compile_report, within: 30m}
  - {name: nobody at 2, incident: dispute, no_page_at_level: 2, task: compile_report}
"""


def test_surge_of_incidents_in_one_scenario(tmp_path):
    path = tmp_path / "surge.yaml"
    path.write_text(SURGE.replace("ROSTER", str(ROSTER_PATH)), encoding="utf-8")
    loaded = load_scenario(path)
    results = run_drills([(loaded, timedelta(0))], engine=make_engine(f"sqlite:///{tmp_path / 's.db'}"),
                         playbooks=load_playbooks(PLAYBOOKS_DIR), roster=load_roster(ROSTER_PATH))
    by_name = {r.name: r.scorecard for r in results}
    assert [r.name for r in results] == ["dispute", "violence"]
    opened = {n: c["incident"]["opened_at"] for n, c in by_name.items()}
    assert opened == {"dispute": "2026-03-14T13:00:00+00:00", "violence": "2026-03-14T13:20:00+00:00"}
    assert [(e["name"], e["value_seconds"], e["status"]) for e in by_name["violence"]["expectations"]] == [
        ("police", 120.0, "SUCCESS")]
    assert [(e["name"], e["value_seconds"], e["status"]) for e in by_name["dispute"]["expectations"]] == [
        ("report", 600.0, "SUCCESS"), ("nobody at 2", None, "SUCCESS")]
    # nobody acted on the violence incident's care task: its chain ran while the dispute went on
    treat = [e for e in by_name["violence"]["escalations"] if e["task"] == "treat_injured"]
    assert [e["level"] for e in treat][:2] == [1, 2]


def test_surge_scenario_errors_are_located(tmp_path):
    path = tmp_path / "bad.yaml"
    bad = SURGE.replace("ROSTER", str(ROSTER_PATH)).replace("  - {at: 10m, incident: dispute, ", "  - {at: 10m, ")
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(InputError, match="name the incident") as exc:
        load_scenario(path)
    assert exc.value.field == "steps[0]"
    path.write_text(SURGE.replace("ROSTER", str(ROSTER_PATH)).replace("at: 22m, incident: violence",
                                                                      "at: 12m, incident: violence"), "utf-8")
    with pytest.raises(InputError, match="before its incident is opened") as exc:
        load_scenario(path).check_against(load_playbooks(PLAYBOOKS_DIR), load_roster(ROSTER_PATH))
    assert exc.value.field == "steps[1].at"
    path.write_text(SURGE.replace("ROSTER", str(ROSTER_PATH)).replace("incident: violence, task: call_police,",
                                                                      "incident: violnce, task: call_police,"), "utf-8")
    with pytest.raises(InputError, match="no incident 'violnce'"):
        load_scenario(path)


def test_drill_run_replays_several_files_and_folders_on_one_clock(crisis, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CRISIS_PLAYBOOKS", str(PLAYBOOKS_DIR))
    monkeypatch.setenv("CRISIS_HOME", str(tmp_path))  # default drill databases: never the project's store/
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("violence-night-er", "privacy-leak-screenshot"):
        (folder / f"{name}.yaml").write_text((DRILLS_DIR / f"{name}.yaml").read_text("utf-8").replace(
            "roster: ../roster.yaml", f"roster: {ROSTER_PATH}"), "utf-8")
    out = tmp_path / "out"
    cards = json.loads(crisis("drill", "run", str(folder), "--out", str(out), "--json").stdout)
    assert [c["scenario"]["name"] for c in cards] == ["privacy-leak-screenshot", "violence-night-er"]
    assert [c["metrics"]["expectation_score"] for c in cards] == [91.7, 100.0]
    assert (out / "privacy-leak-screenshot" / "scorecard.json").is_file()
    assert (out / "violence-night-er" / "scorecard.json").is_file()
    one = json.loads(crisis("drill", "run", str(folder / "violence-night-er.yaml"), "--out", str(tmp_path / "o1"),
                            "--json").stdout)
    assert one["scenario"]["name"] == "violence-night-er" and (tmp_path / "o1" / "scorecard.json").is_file()
    assert len(list((tmp_path / "store" / "drills").glob("*.db"))) == 2  # each run's database in the temp root
    twice = json.loads(crisis("drill", "run", str(folder / "violence-night-er.yaml"),
                              str(folder / "violence-night-er.yaml"), "--out", str(tmp_path / "o2"), "--json").stdout)
    assert [c["incident"]["id"] for c in twice] == [1, 2]  # one folder each: neither overwrites the other's reports
    assert {p.name for p in (tmp_path / "o2").iterdir() if p.is_dir()} == {"violence-night-er", "violence-night-er-2"}
    assert [json.loads((tmp_path / "o2" / d / "scorecard.json").read_text("utf-8"))["incident"]["id"]
            for d in ("violence-night-er", "violence-night-er-2")] == [1, 2]


def test_drill_validate_checks_several_files_and_names_the_incidents(crisis, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CRISIS_PLAYBOOKS", str(PLAYBOOKS_DIR))
    surge = tmp_path / "surge.yaml"
    surge.write_text(SURGE.replace("ROSTER", str(ROSTER_PATH)), encoding="utf-8")
    night = tmp_path / "night.yaml"
    night.write_text((DRILLS_DIR / "violence-night-er.yaml").read_text("utf-8").replace(
        "roster: ../roster.yaml", f"roster: {ROSTER_PATH}"), "utf-8")
    ok = crisis.json("drill", "validate", str(surge), str(night))
    assert [(s["name"], s["incidents"], s["steps"]) for s in ok["scenarios"]] == [
        ("surge", ["dispute", "violence"], 3), ("violence-night-er", ["main"], 29)]
    night.write_text(night.read_text("utf-8").replace("person: oncall_backup, from", "person: nobody, from"), "utf-8")
    err = crisis.json("drill", "validate", str(tmp_path), code=2)
    err = err["error"]
    assert err["code"] == "invalid" and "on_call[0].person" in err["field"] and "unknown person 'nobody'" in \
        err["message"] and err["file"]
