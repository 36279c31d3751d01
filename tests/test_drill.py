"""A drill replay whose scorecard is asserted field by field, against hand-computed values."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import DRILLS_DIR, PLAYBOOKS_DIR, ROSTER_PATH

from crisis import logs
from crisis.drill.runner import run_drill, run_drills
from crisis.drill.scenario import load_scenario
from crisis.errors import InputError
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.store.db import make_engine

PLAYBOOK = """
category: drill_test
name: {zh: 演练测试, en: Drill test}
default_severity: III
escalation:
  chain: [assignee, group_head, leadership_head, on_call]
  wait: {I: 5m, II: 10m, III: 15m, IV: 20m}
  repeat: 1
stages:
  monitoring:
    tasks:
      - key: compile_report
        group: monitoring
        role: info_staff
        title: {zh: 报告, en: Report}
        due: {I: 10m, II: 20m, III: 30m, IV: 40m}
  reported:
    tasks:
      - key: assess_severity
        group: leadership
        title: {zh: 研判, en: Assess}
        due: {I: 30m, II: 1h, III: 2h, IV: 4h}
  assessing:
    tasks:
      - key: issue_instructions
        group: leadership
        title: {zh: 指令, en: Instructions}
        due: 1h
  responding:
    tasks:
      - key: release_statement
        group: monitoring
        role: spokesperson
        title: {zh: 发布, en: Release}
        anchor: incident
        due: {I: 5h, II: 5h, III: 24h, IV: 48h}
"""

SCENARIO = """
name: field-by-field
title: {zh: 逐项断言, en: Field by field}
start: 2026-03-14T21:00:00+08:00
duration: 6h
roster: ROSTER_PATH
incident:
  title: 测试事件
  category: drill_test
  severity: III
  signals: {reposts: 10}
  opened_by: duty_officer
steps:
  - {at: 40m, do: complete, task: compile_report, by: info_staff}
  - {at: 41m, do: report, by: duty_officer}
  - {at: 50m, do: respond, by: duty_officer}
  - {at: 1h, do: assess, severity: I, decision: activate, by: president, override: true, reason: 紧急}
  - {at: 1h10m, inject: media_call, text: 记者来电}
  - {at: 1h40m, do: ack, task: issue_instructions, by: oncall_admin}
  - {at: 2h, do: complete, task: issue_instructions, by: president}
  - {at: 2h01m, do: respond, by: duty_officer}
  - at: 3h
    do: statement
    by: publicity_head
    title: 情况通报
    body: 我院高度重视，已成立调查组，后续进展将及时通报。
    next_update: 24h
    reviewers: [info_staff, info_head, president]
  - {at: 3h05m, do: complete, task: release_statement, by: publicity_head}
expect:
  - {name: report in 30m, metric: time_to_report, within: 30m}
  - {name: statement in 5h, metric: time_to_first_statement, within: 5h}
  - {name: assess in 20m, metric: time_to_assessment, within: 20m}
"""


@pytest.fixture()
def setup(tmp_path: Path):
    logs.configure(io.StringIO())
    pb_dir = tmp_path / "playbooks"
    pb_dir.mkdir()
    (pb_dir / "drill_test.yaml").write_text(PLAYBOOK, encoding="utf-8")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO.replace("ROSTER_PATH", str(ROSTER_PATH)), encoding="utf-8")
    loaded = load_scenario(scenario)
    return loaded, load_playbooks(pb_dir), load_roster(loaded.roster_path()), tmp_path


def at(hhmm: str) -> str:
    """Scenario start 21:00+08:00 is 13:00 UTC on 2026-03-14."""
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 3, 14, 13 + h, m, tzinfo=UTC).isoformat()


def test_scorecard_field_by_field(setup):
    loaded, playbooks, roster, tmp = setup
    r = run_drill(loaded, engine=make_engine(f"sqlite:///{tmp / 'd.db'}"), playbooks=playbooks, roster=roster)
    card = r.scorecard
    assert r.steps_applied == 8 and r.steps_rejected == 2

    tasks = {t["key"]: t for t in card["tasks"]}
    assert list(tasks) == ["compile_report", "assess_severity", "issue_instructions", "release_statement"]
    cr = tasks["compile_report"]
    assert (cr["stage"], cr["group"], cr["assignee"], cr["title"]) == ("monitoring", "monitoring", "info_staff", "报告")
    assert cr["due_at"] == at("0:30") and cr["done_at"] == at("0:40")
    assert cr["late_seconds"] == 600 and cr["outcome"] == "late" and cr["escalations"] == 1
    # assess_severity (due +2h for grade III) was waived by the leadership override at +1h
    a = tasks["assess_severity"]
    assert a["status"] == "waived" and a["outcome"] == "missed" and a["done_at"] is None
    assert a["due_at"] == at("2:41") and a["late_seconds"] is None and a["escalations"] == 0
    ii = tasks["issue_instructions"]  # entered at +1h, due 1h later, L0 at +2h? no: acked at +1h40 after L0..?
    assert ii["due_at"] == at("2:00") and ii["done_at"] == at("2:00") and ii["late_seconds"] == 0
    assert ii["outcome"] == "on_time" and ii["escalations"] == 0
    rs = tasks["release_statement"]  # anchored at the incident: grade I → 5 h after opening
    assert rs["due_at"] == at("5:00") and rs["done_at"] == at("3:05") and rs["outcome"] == "on_time"

    # escalations: compile_report L1 at +30m to the assignee (info_staff), acknowledged? no → L2 not reached
    # because it was done at +40m (< +45m)
    assert [(e["task"], e["level"], e["recipient"], e["fired_at"], e["late_seconds"]) for e in card["escalations"]] \
        == [("compile_report", 1, "info_staff", at("0:30"), 0.0)]

    m = card["metrics"]
    assert m["time_to_report_seconds"] == 41 * 60
    assert m["time_to_assessment_seconds"] == 60 * 60
    assert m["time_to_first_statement_seconds"] == 3 * 3600
    assert m["time_to_close_seconds"] is None
    assert (m["tasks_total"], m["tasks_done"], m["tasks_on_time"], m["tasks_late"], m["tasks_missed"]) \
        == (4, 3, 2, 1, 1)
    assert m["on_time_rate"] == pytest.approx(2 / 4)
    assert m["escalations_fired"] == 1 and m["escalations_acknowledged"] == 0
    assert m["overrides"] == 1 and m["rejected_actions"] == 2  # respond at +50m and the ack at +1h40
    assert m["statements_released"] == 1 and m["final_stage"] == "responding" and m["severity"] == "I"

    exp = {e["name"]: e for e in card["expectations"]}
    assert exp["report in 30m"]["status"] == "PARTIAL" and exp["report in 30m"]["value_seconds"] == 41 * 60
    assert exp["statement in 5h"]["status"] == "SUCCESS"
    assert exp["assess in 20m"]["status"] == "FAILED"
    assert m["expectation_score"] == pytest.approx(50.0)

    kinds = [e["kind"] for e in card["timeline"]]
    assert kinds.count("drill_action_rejected") == 2
    rejected = [e for e in card["timeline"] if e["kind"] == "drill_action_rejected"]
    assert "allowed: assess" in rejected[0]["data"]["text"]
    assert "no escalation to acknowledge" in rejected[1]["data"]["text"]
    assert kinds.index("inject") > kinds.index("override")


def test_nobody_acts_escalates_to_on_call(setup):
    loaded, playbooks, roster, tmp = setup
    sc = loaded.scenario.model_copy(update={"steps": []})
    loaded.scenario = sc
    r = run_drill(loaded, engine=make_engine(f"sqlite:///{tmp / 'n.db'}"), playbooks=playbooks, roster=roster)
    chain = [(e["level"], e["target"], e["recipient"], e["fired_at"]) for e in r.scorecard["escalations"]]
    # due +30m, wait 15m for grade III, chain of 4 plus 1 repeat
    assert chain == [
        (1, "assignee", "info_staff", at("0:30")),
        (2, "group_head", "publicity_head", at("0:45")),
        (3, "leadership_head", "president", at("1:00")),
        (4, "on_call", "oncall_admin", at("1:15")),
        (5, "on_call", "oncall_admin", at("1:30")),
    ]
    assert r.scorecard["metrics"]["reached_on_call"] == 2
    assert r.scorecard["metrics"]["final_stage"] == "monitoring"
    assert {n["to"] for n in r.notifications if n["key"].startswith("esc:")} == {
        "info_staff", "publicity_head", "president", "oncall_admin"}


def test_concurrent_incidents_share_one_clock(setup):
    from datetime import timedelta

    loaded, playbooks, roster, tmp = setup
    results = run_drills([(loaded, timedelta(0)), (loaded, timedelta(minutes=10))],
                         engine=make_engine(f"sqlite:///{tmp / 'c.db'}"), playbooks=playbooks, roster=roster)
    a, b = (r.scorecard for r in results)
    assert a["incident"]["id"] != b["incident"]["id"]
    shift = datetime.fromisoformat(b["incident"]["opened_at"]) - datetime.fromisoformat(a["incident"]["opened_at"])
    assert shift == timedelta(minutes=10)
    assert a["metrics"]["time_to_report_seconds"] == b["metrics"]["time_to_report_seconds"] == 41 * 60


def test_incidents_due_at_one_moment_act_in_scenario_order(setup):
    """The runner wakes only the incidents due at a moment; those due together act in the order they were given
    (the first one opened first, each step of the first before the same step of the next), whatever the offsets."""
    from datetime import timedelta

    from sqlalchemy import text

    loaded, playbooks, roster, tmp = setup
    engine = make_engine(f"sqlite:///{tmp / 'o.db'}")
    results = run_drills([(loaded, timedelta(minutes=20)), (loaded, timedelta(0)), (loaded, timedelta(minutes=20))],
                         engine=engine, playbooks=playbooks, roster=roster)
    assert [r.incident_id for r in results] == [2, 1, 3]  # results in scenario order; ids in opening order
    with engine.connect() as conn:
        moves = conn.execute(text("SELECT incident_id FROM event WHERE kind = 'stage_changed' ORDER BY id")).scalars()
        together = [iid for iid in moves if iid != 1]
    assert together and together == [2, 3] * (len(together) // 2)  # at each shared moment: 2 acts, then 3
    opened = [datetime.fromisoformat(r.scorecard["incident"]["opened_at"]) for r in results]
    assert opened[0] == opened[2] == opened[1] + timedelta(minutes=20)
    assert results[0].scorecard["metrics"] == results[1].scorecard["metrics"] == results[2].scorecard["metrics"]


def test_scenario_errors_name_file_line_field(setup, tmp_path):
    loaded, playbooks, roster, _ = setup
    bad = loaded.path.read_text(encoding="utf-8").replace("task: compile_report, by: info_staff",
                                                          "task: compile_reprot, by: info_staff")
    p = tmp_path / "bad.yaml"
    p.write_text(bad, encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p).check_against(playbooks, roster)
    line = next(i for i, text in enumerate(bad.splitlines(), 1) if "compile_reprot" in text)
    assert ei.value.file == str(p) and ei.value.line == line and ei.value.field == "steps[0].task"
    assert "no task 'compile_reprot'" in str(ei.value)

    p.write_text(loaded.path.read_text(encoding="utf-8").replace("at: 50m, do: respond", "at: 50m, do: respnd"),
                 encoding="utf-8")
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    assert ei.value.field == "steps[2]" and "unknown action 'respnd'" in str(ei.value)

    p.write_text(loaded.path.read_text(encoding="utf-8").replace("at: 3h05m", "at: 9h"), encoding="utf-8")
    with pytest.raises(InputError, match="after the drill's end"):
        load_scenario(p).check_against(playbooks, roster)


def test_shipped_scenarios_validate():
    playbooks = load_playbooks(PLAYBOOKS_DIR)
    for path in sorted(DRILLS_DIR.glob("*.yaml")):
        loaded = load_scenario(path)
        loaded.check_against(playbooks, load_roster(loaded.roster_path()))


def test_public_health_drill_plays_as_documented(tmp_path):
    """The shipped public-health drill: a release without leadership approval is refused, late containment
    climbs the chain to the on-call administrator, and the regulatory 2 h report is met."""
    loaded = load_scenario(DRILLS_DIR / "public-health-rumour.yaml")
    r = run_drill(loaded, engine=make_engine(f"sqlite:///{tmp_path / 'ph.db'}"),
                  playbooks=load_playbooks(PLAYBOOKS_DIR), roster=load_roster(loaded.roster_path()))
    card = r.scorecard
    start = loaded.scenario.start

    def t(minutes: int) -> str:
        return (start + timedelta(minutes=minutes)).astimezone(UTC).isoformat()

    assert {e["name"].split(" / ")[1]: e["status"] for e in card["expectations"]} == {
        "Report to leadership within 15 min": "SUCCESS", "Health authority informed within 2 h": "SUCCESS",
        "Authoritative information within 5 h": "SUCCESS", "Containment in place within 1 h": "PARTIAL"}
    refused = [e for e in card["timeline"] if e["kind"] == "drill_action_rejected"]
    assert len(refused) == 1 and "2/3 review levels approved" in refused[0]["data"]["text"]
    assert [s["status"] for s in card["statements"]] == ["in_review", "released"]
    chain = [(e["level"], e["recipient"], e["fired_at"]) for e in card["escalations"] if e["task"] == "containment"]
    # medical_affairs is both the assignee and the response group's head: level 2 goes on to leadership
    assert chain == [(1, "medical_affairs", t(52)), (2, "president", t(57)), (3, "oncall_admin", t(62))]
    tasks = {x["key"]: x for x in card["tasks"]}
    assert tasks["report_health_authority"]["due_at"] == t(120)  # anchored at the incident: 2 h after opening
    assert tasks["containment"]["late_seconds"] == 13 * 60
    assert card["metrics"]["final_stage"] == "follow_up"
    assert card["metrics"]["time_to_first_statement_seconds"] == 150 * 60


def test_a_replay_collects_garbage_less_often_and_restores_the_collector_after():
    import gc

    from crisis.drill.runner import rarer_collections

    before = gc.get_threshold()
    with pytest.raises(RuntimeError), rarer_collections():
        assert gc.get_threshold() == (10_000, *before[1:])
        raise RuntimeError("a failed replay")
    assert gc.get_threshold() == before
