"""Playbooks: the shipped ones are complete and sane; broken ones fail with a located InputError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import PLAYBOOKS_DIR, ROSTER_PATH

from crisis.clock import VirtualClock
from crisis.config import Settings, build_service
from crisis.engine import fsm
from crisis.engine.plan import plan_stage
from crisis.errors import InputError
from crisis.playbook import (
    CHAIN_TARGETS,
    TASK_STAGES,
    PlaybookSet,
    check_roster,
    load_playbook,
    load_playbooks,
)
from crisis.roster import GROUPS, load_roster
from crisis.severity import Severity
from crisis.yamlsrc import parse_yaml

CATEGORIES = ("medical_dispute", "service_quality", "information_error", "public_health", "workplace_violence",
              "privacy_leak", "staff_conduct")
GRAVEST_FIRST = (Severity.I, Severity.II, Severity.III, Severity.IV)
M = timedelta(minutes=1)
H = timedelta(hours=1)

# Every stage an incident can be in that is not final: the start plus every transition target.
ENTERED_STAGES = sorted(({"monitoring"} | {str(t["dest"]) for t in fsm.TRANSITIONS}) - set(fsm.FINAL))

# A minimal valid playbook; the line numbers below refer to it.
BASE = """\
category: sample
name: {zh: 示例, en: Sample}
escalation:
  wait: {I: 5m, II: 10m, III: 20m, IV: 30m}
stages:
  monitoring:
    tasks:
      - key: compile_report
        group: monitoring
        title: {zh: 报告, en: Report}
        due: {I: 10m, II: 15m, III: 30m, IV: 1h}
"""


@pytest.fixture(scope="module")
def shipped() -> PlaybookSet:
    return load_playbooks(PLAYBOOKS_DIR)


@pytest.fixture(scope="module")
def roster_example():
    return load_roster(ROSTER_PATH)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped playbooks
def test_shipped_playbooks_load_and_cover_the_categories(shipped):
    assert len(shipped.categories) >= 4
    assert set(CATEGORIES) <= set(shipped.categories)
    for cat in CATEGORIES:
        pb = shipped.get(cat)
        assert pb.category == cat
        assert Path(shipped.sources[cat]).name == f"{cat}.yaml"
        assert pb.name.zh and pb.name.en and pb.name.zh != pb.name.en
        assert pb.description is not None and pb.description.zh and pb.description.en


def test_entered_stages_are_the_task_stages():
    assert sorted(TASK_STAGES) == ENTERED_STAGES


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("stage", ENTERED_STAGES)
def test_every_entered_stage_has_tasks(shipped, category, stage):
    tasks = shipped.get(category).tasks_for(stage)
    assert tasks, f"{category} assigns nothing in {stage}"
    for t in tasks:
        assert t.due is not None, f"{category}.{stage}.{t.key} has no deadline"
        assert t.title.zh and t.title.en


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_active_stage_has_a_required_task(shipped, category):
    pb = shipped.get(category)
    for stage in ENTERED_STAGES:
        if stage == "watch":  # watching is optional by nature
            continue
        assert any(t.required for t in pb.tasks_for(stage)), f"{category}.{stage} has no required task"


@pytest.mark.parametrize("category", CATEGORIES)
def test_all_four_groups_have_work(shipped, category):
    pb = shipped.get(category)
    used = {t.group for stage in pb.stages for t in pb.tasks_for(stage)}
    assert used == set(GROUPS)


@pytest.mark.parametrize("category", CATEGORIES)
def test_graver_grades_never_get_longer_deadlines(shipped, category):
    pb = shipped.get(category)
    checked = 0
    for stage, spec in pb.stages.items():
        for t in spec.tasks:
            assert t.due is not None
            dues = [t.due[s] for s in GRAVEST_FIRST]
            assert dues == sorted(dues), f"{category}.{stage}.{t.key}: {dues}"
            assert all(d > timedelta(0) for d in dues)
            checked += 1
        if spec.escalation:
            waits = [spec.escalation.wait[s] for s in GRAVEST_FIRST]
            assert waits == sorted(waits)
    waits = [pb.escalation.wait[s] for s in GRAVEST_FIRST]
    assert waits == sorted(waits)
    assert checked >= 15


def test_clock_speeds_follow_the_category():
    """Public health chases fastest, then information errors, medical disputes, service complaints."""
    pbs = load_playbooks(PLAYBOOKS_DIR)
    order = ["public_health", "information_error", "medical_dispute", "service_quality"]
    for sev in Severity:
        waits = [pbs.get(c).escalation.wait[sev] for c in order]
        assert waits == sorted(waits), (sev, waits)
    # the same task is never due sooner for a service complaint than for a medical dispute
    md, sq = pbs.get("medical_dispute"), pbs.get("service_quality")
    for stage in TASK_STAGES:
        md_tasks = {t.key: t for t in md.tasks_for(stage)}
        for t in sq.tasks_for(stage):
            if t.key in md_tasks and t.anchor == md_tasks[t.key].anchor:
                for sev in Severity:
                    assert t.due[sev] >= md_tasks[t.key].due[sev], (stage, t.key, sev)


def test_public_health_reports_to_the_health_authority_within_2h_of_the_incident(shipped):
    pb = shipped.get("public_health")
    task = {t.key: t for t in pb.tasks_for("assessing")}["report_health_authority"]
    assert task.group == "leadership" and task.required and task.escalate
    assert task.anchor == "incident"
    assert task.due == {s: 2 * H for s in Severity}
    outbreak = {t.key: t for t in pb.tasks_for("assessing")}["report_infection_outbreak"]
    assert outbreak.anchor == "incident" and outbreak.due == {s: 12 * H for s in Severity}
    keys = {t.key for stage in pb.stages for t in pb.tasks_for(stage)}
    assert "cdc_coordination" in keys


def test_information_error_is_corrected_within_hours(shipped):
    pb = shipped.get("information_error")
    reported = {t.key: t for t in pb.tasks_for("reported")}
    assert reported["take_down"].anchor == "incident" and reported["take_down"].due[Severity.I] <= H
    release = {t.key: t for t in pb.tasks_for("responding")}["release_correction"]
    assert release.anchor == "incident" and release.required
    assert all(release.due[s] <= 12 * H for s in Severity)
    follow = {t.key for t in pb.tasks_for("follow_up")}
    assert {"accountability", "handling_report", "after_action_review"} <= follow


def test_incident_anchored_tasks_are_planned_from_the_opening(shipped, roster_example):
    opened = datetime(2026, 3, 14, 13, 0, tzinfo=UTC)
    entered = opened + 3 * H
    planned = {p.key: p for p in plan_stage(shipped.get("public_health"), "assessing", Severity.II,
                                             stage_entered_at=entered, incident_opened_at=opened,
                                             roster=roster_example)}
    assert planned["report_health_authority"].due_at == opened + 2 * H
    assert planned["issue_instructions"].due_at == entered + 30 * M
    assert planned["report_health_authority"].assignee == "president"


def test_shipped_playbooks_match_the_example_roster(shipped, roster_example):
    check_roster(shipped, roster_example)  # raises on any role or person the roster lacks
    for pb in shipped:
        for step in pb.escalation.chain:
            assert step in CHAIN_TARGETS or step.startswith(("role:", "person:"))


def test_unknown_role_is_a_located_error_not_a_silent_fallback(tmp_path, roster_example):
    text = BASE.replace("        group: monitoring\n", "        group: monitoring\n        role: no_such_role\n")
    folder = tmp_path / "pb"
    path = write(folder, "sample.yaml", text)
    pbs = load_playbooks(folder)  # the playbook alone is well-formed; it is the roster that lacks the role
    with pytest.raises(InputError) as exc:
        check_roster(pbs, roster_example)
    err = exc.value
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "no_such_role" in t)
    assert (err.file, err.field, err.line) == (str(path), "stages.monitoring.tasks[0].role", line)
    assert "role 'no_such_role' is not in the roster" in err.message


def test_unknown_person_in_a_chain_is_a_located_error(tmp_path, roster_example):
    text = BASE.replace("escalation:\n", "escalation:\n  chain: [assignee, person:ghost, on_call]\n")
    assert "person:ghost" in text
    folder = tmp_path / "pb"
    path = write(folder, "sample.yaml", text)
    with pytest.raises(InputError) as exc:
        check_roster(load_playbooks(folder), roster_example)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "person:ghost" in t)
    assert (exc.value.file, exc.value.field, exc.value.line) == (str(path), "escalation.chain[1]", line)
    assert "no such person" in exc.value.message


# --------------------------------------------------------------------------- escalation plans
def test_stage_escalation_overrides_the_playbook_default(tmp_path):
    text = BASE.replace("stages:\n  monitoring:\n",
                        "stages:\n  monitoring:\n    escalation: {chain: [leadership_head], wait: 1m, repeat: 1}\n")
    pb = load_playbook(write(tmp_path, "sample.yaml", text))
    monitoring, reported = pb.escalation_for("monitoring"), pb.escalation_for("reported")
    assert (monitoring.chain, monitoring.wait[Severity.I], monitoring.repeat) == (["leadership_head"], M, 1)
    assert (reported.chain, reported.wait[Severity.I], reported.repeat) == (
        ["assignee", "group_head", "leadership_head", "on_call"], 5 * M, 2)


# --------------------------------------------------------------------------- located errors
def test_base_sample_is_valid(tmp_path):
    pb = load_playbook(write(tmp_path, "sample.yaml", BASE))
    assert pb.category == "sample" and pb.tasks_for("monitoring")[0].due[Severity.IV] == H


BAD_CASES = [
    pytest.param(BASE.replace("group: monitoring", "group: marketing"),
                 "stages.monitoring.tasks[0].group", 9, "unknown group 'marketing'", id="unknown-group"),
    pytest.param(BASE.replace("{zh: 报告, en: Report}", "{zh: 报告}"),
                 "stages.monitoring.tasks[0].title.en", 10, "Field required", id="missing-title-en"),
    pytest.param(BASE.replace("name: {zh: 示例, en: Sample}", "name: {en: Sample}"),
                 "name.zh", 2, "Field required", id="missing-name-zh"),
    pytest.param(BASE.replace("IV: 1h}", "IV: 5 parsecs}"),
                 "stages.monitoring.tasks[0].due", 11, "invalid duration '5 parsecs'", id="bad-duration"),
    # bounded durations: each was an OverflowError traceback or a tick that crashed on every sweep
    pytest.param(BASE.replace("I: 5m, II", "I: 99999999d, II"),
                 "escalation.wait", 4, "longer than 365 days", id="huge-wait"),
    pytest.param(BASE.replace("IV: 1h}", "IV: 366d}"),
                 "stages.monitoring.tasks[0].due", 11, "longer than 365 days", id="due-over-a-year"),
    pytest.param(BASE.replace("        due: {I: 10m, II: 15m, III: 30m, IV: 1h}", "        due: .inf"),
                 "stages.monitoring.tasks[0].due", 11, "must be finite", id="due-inf"),
    pytest.param(BASE.replace("        due: {I: 10m, II: 15m, III: 30m, IV: 1h}", "        due: .nan"),
                 "stages.monitoring.tasks[0].due", 11, "must be finite", id="due-nan"),
    pytest.param(BASE.replace("IV: 1h}", "IV: 99999999999999d}"),
                 "stages.monitoring.tasks[0].due", 11, "too long", id="due-overflows-timedelta"),
    pytest.param(BASE.replace("IV: 1h}", "V: 1h}"),
                 "stages.monitoring.tasks[0].due", 11, "invalid severity 'V'", id="severity-V"),
    pytest.param(BASE.replace(", IV: 1h}", "}"),
                 "stages.monitoring.tasks[0].due", 11, "missing IV", id="missing-grade"),
    pytest.param(BASE.replace("I: 5m, II", "I: 0m, II"),
                 "escalation.wait", 4, "longer than zero", id="zero-wait"),
    pytest.param(BASE.replace("escalation:\n", "escalation:\n  chain: [assignee, boss]\n"),
                 "escalation.chain", 4, "unknown chain step 'boss'", id="bad-chain-step"),
    pytest.param(BASE.replace("        group: monitoring\n", "        group: monitoring\n        group: response\n"),
                 "stages.monitoring.tasks[0].group", 10, "duplicate key 'group'", id="duplicate-yaml-key"),
    pytest.param(BASE + "colour: red\n", "colour", 12, "Extra inputs are not permitted", id="unknown-top-field"),
    pytest.param(BASE.replace("        group: monitoring\n", "        group: monitoring\n        owner: bob\n"),
                 "stages.monitoring.tasks[0].owner", 10, "Extra inputs are not permitted", id="unknown-task-field"),
    pytest.param(BASE.replace("        due:", "        anchor: event\n        due:"),
                 "stages.monitoring.tasks[0].anchor", 11, "unknown anchor 'event'", id="bad-anchor"),
    pytest.param(BASE.replace("key: compile_report", "key: Compile-Report"),
                 "stages.monitoring.tasks[0].key", 8, "lower_snake_case", id="bad-task-key"),
    pytest.param(BASE.replace("category: sample", "category: Sample-X"),
                 "category", 1, "lower_snake_case", id="bad-category"),
    pytest.param(BASE.replace("        group: monitoring", "       group: monitoring"),
                 None, 9, "YAML syntax error", id="yaml-syntax"),
    pytest.param("- just\n- a list\n", None, 1, "must be a mapping", id="not-a-mapping"),
    pytest.param("", None, None, "file is empty", id="empty-file"),
]


@pytest.mark.parametrize(("text", "field", "line", "message"), BAD_CASES)
def test_bad_playbook_is_a_located_input_error(tmp_path, text, field, line, message):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    err = exc.value
    assert err.file == str(path)
    assert err.field == field
    assert err.line == line
    assert message in err.message
    assert str(err).startswith(f"{path}:{line}: " if line else f"{path}: ")


@pytest.mark.parametrize(("text", "field", "line", "message"), BAD_CASES)
def test_bad_playbook_in_a_folder_names_the_file(tmp_path, text, field, line, message):
    folder = tmp_path / "playbooks"
    write(folder, "a_good.yaml", BASE.replace("category: sample", "category: good"))
    bad = write(folder, "b_bad.yaml", text)
    with pytest.raises(InputError) as exc:
        load_playbooks(folder)
    assert (exc.value.file, exc.value.field, exc.value.line) == (str(bad), field, line)


def test_unknown_stage_is_named(tmp_path):
    path = write(tmp_path, "bad.yaml", BASE + "  triage:\n    tasks: []\n")
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    err = exc.value
    assert err.file == str(path)
    assert "unknown stage 'triage'" in err.message
    assert (err.field, err.line) == ("stages.triage", 12)


def test_final_stage_cannot_carry_tasks(tmp_path):
    path = write(tmp_path, "bad.yaml", BASE + "  closed:\n    tasks: []\n")
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    assert "unknown stage 'closed'" in exc.value.message and exc.value.field == "stages.closed"


def test_duplicate_task_key_in_a_stage_is_named(tmp_path):
    text = BASE + "      - key: compile_report\n        group: response\n        title: {zh: 再报, en: Again}\n"
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    err = exc.value
    assert err.file == str(path)
    assert "duplicate task key 'compile_report' (already used by tasks[0])" in err.message
    assert (err.field, err.line) == ("stages.monitoring.tasks[1].key", 12)


def test_same_task_key_in_two_stages_is_fine(tmp_path):
    text = BASE + ("  reported:\n    tasks:\n      - key: compile_report\n        group: leadership\n"
                   "        title: {zh: 再报, en: Again}\n        due: 1h\n")
    pb = load_playbook(write(tmp_path, "ok.yaml", text))
    assert [t.key for t in pb.tasks_for("reported")] == ["compile_report"]


UNCLOSED_QUOTE = BASE.replace("title: {zh: 报告, en: Report}", "title: \"{zh: 报告, en: Report}")


def test_unclosed_quote_is_a_syntax_error(tmp_path):
    path = write(tmp_path, "bad.yaml", UNCLOSED_QUOTE)
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    assert (exc.value.file, exc.value.field) == (str(path), None)
    assert exc.value.message.startswith("YAML syntax error")
    assert exc.value.line is not None


def test_unclosed_quote_points_at_the_opening_line(tmp_path):
    path = write(tmp_path, "bad.yaml", UNCLOSED_QUOTE)
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    assert exc.value.line == 10


def test_duplicate_category_across_files(tmp_path):
    folder = tmp_path / "playbooks"
    first = write(folder, "a.yaml", BASE)
    second = write(folder, "b.yml", "# same category again\n" + BASE)
    with pytest.raises(InputError) as exc:
        load_playbooks(folder)
    err = exc.value
    assert (err.file, err.field, err.line) == (str(second), "category", 2)
    assert "category 'sample' is already defined in" in err.message and str(first) in err.message


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(InputError) as exc:
        load_playbooks(tmp_path / "nowhere")
    assert exc.value.file == str(tmp_path / "nowhere") and "not found" in exc.value.message
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty", "notes.txt", BASE)
    with pytest.raises(InputError) as exc:
        load_playbooks(tmp_path / "empty")
    assert exc.value.file == str(tmp_path / "empty") and "no playbooks" in exc.value.message


def test_bad_folder_raises_before_anything_is_built(tmp_path):
    """One bad file fails the whole load: no partial set, no database created, files untouched."""
    folder = tmp_path / "playbooks"
    for cat in CATEGORIES:
        write(folder, f"{cat}.yaml", (PLAYBOOKS_DIR / f"{cat}.yaml").read_text("utf-8"))
    bad_text = BASE.replace("IV: 1h}", "IV: 5 parsecs}")
    bad = write(folder, "zz_bad.yaml", bad_text)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    with pytest.raises(InputError) as exc:
        load_playbooks(folder)
    assert exc.value.file == str(bad)

    db = tmp_path / "crisis.db"
    settings = Settings(db_url=f"sqlite:///{db}", playbooks_dir=folder, roster_path=ROSTER_PATH,
                        notify_file=tmp_path / "notify.jsonl", log_path=tmp_path / "crisis.log")
    with pytest.raises(InputError) as exc:
        build_service(settings, VirtualClock(datetime(2026, 3, 14, 13, 0, tzinfo=UTC)))
    assert (exc.value.file, exc.value.line) == (str(bad), 11)
    assert not db.exists()
    assert not (tmp_path / "notify.jsonl").exists()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    # fixing the file makes the same folder load, with all categories
    bad.write_text(BASE, encoding="utf-8")
    assert load_playbooks(folder).categories == sorted([*CATEGORIES, "sample"])


def test_parse_yaml_lines_are_one_based():
    doc = parse_yaml(BASE, "mem.yaml")
    assert doc.line_of(()) == 1
    assert doc.line_of(("stages", "monitoring", "tasks", 0, "key")) == 8
    assert doc.line_of(("stages", "monitoring", "tasks", 0, "title", "en")) == 10
