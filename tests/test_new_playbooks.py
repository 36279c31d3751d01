"""Three new playbooks (暴力伤医, 个人信息泄露, 医德医风) and the validation that every required duty can become due."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import PLAYBOOKS_DIR, START, by, drive_to, finish_stage, leader, non_leader, open_incident

from crisis.engine.fsm import always_before
from crisis.errors import InputError
from crisis.playbook import load_playbook, load_playbooks
from crisis.severity import Severity

M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)

SAMPLE = """\
category: sample
name: {zh: 示例, en: Sample}
escalation:
  wait: 10m
stages:
  monitoring:
    tasks:
      - key: compile_report
        group: monitoring
        title: {zh: 报告, en: Report}
        due: 30m
  follow_up:
    tasks:
      - key: publish_outcome
        group: monitoring
        title: {zh: 公布结果, en: Publish the outcome}
        anchor: ANCHOR
        due: 3d
"""


def located(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_playbook(path)
    assert exc.value.file == str(path)
    return exc.value


def test_required_task_without_deadline_is_a_located_error(tmp_path):
    err = located(tmp_path, SAMPLE.replace("ANCHOR", "stage").replace("        due: 3d\n", ""))
    assert (err.field, err.line) == ("stages.follow_up.tasks[0].due", 14)  # the task's line: `due` is missing
    assert "'publish_outcome' has no deadline, so it can never become due" in err.message
    ok = SAMPLE.replace("ANCHOR", "stage").replace("        due: 3d\n", "        required: false\n")
    (tmp_path / "ok.yaml").write_text(ok, encoding="utf-8")
    assert load_playbook(tmp_path / "ok.yaml").tasks_for("follow_up")[0].due is None


@pytest.mark.parametrize(("anchor", "why"), [
    ("onsite", "on-site handling may be skipped on the way to follow-up"),
    ("monitoring", "a reopened cycle starts in reported"),
    ("watch", "watch is only one assessment outcome"),
])
def test_anchor_that_may_never_happen_is_a_located_error(tmp_path, anchor, why):
    err = located(tmp_path, SAMPLE.replace("ANCHOR", anchor))
    assert (err.field, err.line) == ("stages.follow_up.tasks[0].anchor", 17), why
    assert f"anchored at stage '{anchor}', which does not always happen before 'follow_up'" in err.message


def test_anchor_every_path_passes_is_accepted(tmp_path):
    for anchor in ("reported", "assessing", "responding", "media_liaison", "follow_up", "incident", "stage"):
        (tmp_path / "ok.yaml").write_text(SAMPLE.replace("ANCHOR", anchor), encoding="utf-8")
        assert load_playbook(tmp_path / "ok.yaml").tasks_for("follow_up")[0].anchor == anchor
    assert always_before("assessing", "onsite") and not always_before("onsite", "follow_up")
    assert not always_before("assessing", "watch") and always_before("reported", "watch")


def test_stage_anchored_deadline_runs_from_that_stage(svc, roster, clock):
    """staff_conduct: the disciplinary decision is due 14 days (grade III) after assessment began, however long
    the response and media stages took."""
    iid = open_incident(svc, category="staff_conduct", severity="III")
    drive_to(svc, iid, "reported")
    clock.advance(2 * H)
    finish_stage(svc, iid)
    svc.fire(iid, "assess", decision="activate", principal=by(leader(roster)))
    assessed = clock.now()
    for trigger in ("respond", "media", "onsite", "follow_up"):
        clock.advance(D)
        finish_stage(svc, iid)
        svc.fire(iid, trigger, principal=by(leader(roster)))
    assert svc.find_task(iid, "disciplinary_decision").due_at == assessed + 14 * D
    assert svc.find_task(iid, "handling_report").due_at == clock.now() + 7 * D  # stage-anchored


def test_violence_starts_on_site_work_in_the_first_minutes(svc, roster, clock):
    iid = open_incident(svc, category="workplace_violence", severity="II", title="急诊科医生被患者家属殴打")
    first = {t.key: t for t in svc.tasks(iid)}
    assert {"call_police", "secure_scene", "treat_injured", "preserve_video"} <= set(first)
    assert first["call_police"].due_at == START + 5 * M and first["call_police"].assignee == "security_head"
    assert first["secure_scene"].due_at == START + 5 * M and first["treat_injured"].due_at == START + 10 * M
    # the opinion side moves on while the police are not called yet: the on-site duties carry, nothing is dropped
    svc.complete_task(first["compile_report"].id, principal=by("publicity_head"))
    clock.advance(3 * M)
    svc.fire(iid, "report", principal=by(non_leader(roster)))
    ev = [e for e in svc.timeline(iid) if e.kind == "stage_changed"][-1]
    assert ev.data["carried"] == ["call_police", "secure_scene", "treat_injured", "preserve_video"]
    clock.advance(2 * M)
    fired = svc.tick()
    assert [(e.task_id, e.level, e.recipient) for e in fired] == [
        (first["call_police"].id, 1, "security_head"), (first["secure_scene"].id, 1, "security_head")]
    done = svc.complete_task(first["call_police"].id, principal=by("security_head"), note="已报警，派出所出警")
    assert done.status == "done"


def test_privacy_leak_legal_duties_run_from_the_discovery_and_carry(svc, roster, clock):
    iid = open_incident(svc, category="privacy_leak", severity="II", title="网传我院患者病历截图")
    drive_to(svc, iid, "assessing")
    tasks = {t.key: t for t in svc.tasks(iid) if t.stage == "assessing"}
    assert tasks["notify_individuals"].due_at == START + 12 * H
    assert tasks["report_authorities"].due_at == START + 4 * H and tasks["report_authorities"].group == "leadership"
    police = tasks["report_police"]
    assert not police.required
    svc.mark_applicable(police.id, reason="涉嫌侵犯公民个人信息罪", principal=by(leader(roster)))
    finish_stage(svc, iid)  # completes the stage's required tasks, including the police report now
    assert svc.find_task(iid, "report_police").status == "done"


@pytest.mark.parametrize("category", ["workplace_violence", "privacy_leak", "staff_conduct"])
def test_new_playbooks_have_the_statutory_shape(category):
    pb = load_playbooks(PLAYBOOKS_DIR).get(category)
    keys = {t.key: t for stage in pb.stages for t in pb.tasks_for(stage)}
    assert {"compile_report", "assess_severity", "release_statement", "handling_report"} <= set(keys)
    assert keys["release_statement"].anchor == "incident"
    if category == "workplace_violence":
        assert all(keys[k].carry and keys[k].required for k in ("call_police", "secure_scene", "treat_injured"))
        assert keys["file_work_injury"].due == {s: 30 * D for s in Severity}
    if category == "privacy_leak":
        assert keys["report_authorities"].due[Severity.II] == 4 * H and keys["notify_individuals"].carry
    if category == "staff_conduct":
        assert keys["suspend_staff"].required and keys["publish_outcome"].anchor == "assessing"
