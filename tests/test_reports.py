"""Rendered reports show the recorded facts, in both languages, and refuse bad input before writing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from crisis import reports, scorecard
from crisis.errors import InputError
from crisis.principal import Principal as P


@pytest.fixture()
def incident(svc, advance):
    """Grade II medical dispute: reported at +26m, then nobody acts; ticked at +1h31m."""
    inc = svc.open_incident(title="网传|测试 事件", category="medical_dispute", principal=P("duty_officer"),
                            severity="II", signals={"reposts": 120}, source_url="https://weibo.example/1")
    advance(minutes=20)
    svc.update_signals(inc.id, {"reposts": 1500}, principal=P("info_staff"))
    advance(minutes=5)
    svc.complete_task(svc.find_task(inc.id, "compile_report").id, principal=P("publicity_head"))
    advance(minutes=1)
    svc.fire(inc.id, "report", principal=P("duty_officer"))
    advance(minutes=65)  # +1h31m: assess_severity and verify_facts (due +26m + 1h) are 5 min overdue
    svc.tick()
    return inc.id


def test_incident_report_zh_shows_the_recorded_facts(svc, incident):
    text = reports.render("incident_report", reports.report_context(svc, incident, tz="Asia/Shanghai"), "zh-CN")
    assert text.startswith("# 舆情专报")
    assert "| 事件 | 网传\\|测试 事件 |" in text  # a pipe in a title cannot break the table
    assert "| 等级 | II级（重大，橙色） |" in text
    assert "| 当前阶段 | 已报告 |" in text
    assert "| 发现时间 | 2026-03-14 21:00 |" in text  # 13:00 UTC shown in Asia/Shanghai
    assert "- 2026-03-14 21:26 阶段变更：事件监测 → 已报告（林值班）" in text
    assert "| 2026-03-14 21:00 | 120 |" in text and "| 2026-03-14 21:20 | 1,500 |" in text
    assert "「研判事件等级与范围，决定是否启动预案」超时，提醒 1 级（王院长），**无人响应**" in text
    assert "尚未对外发布信息" in text
    # next steps: the two open tasks of the current stage with their deadlines
    assert "- 领导小组：研判事件等级与范围，决定是否启动预案（王院长，03-14 22:26 前）" in text


def test_incident_report_en_and_time_zone(svc, incident):
    text = reports.render("incident_report", reports.report_context(svc, incident, tz="UTC"), "en")
    assert text.startswith("# Incident report")
    assert "| Grade | grade II (serious, orange) |" in text
    assert "| Detected | 2026-03-14 13:00 |" in text
    assert "- 2026-03-14 13:26 stage changed: Monitoring → Reported (林值班)" in text
    assert ('"Assess grade and scope; decide whether to activate the plan" overdue, 1 reminder level(s) (王院长); '
            "**nobody responded**") in text


def test_after_action_findings_come_from_the_record(svc, incident):
    ctx = reports.report_context(svc, incident, tz="Asia/Shanghai")
    gaps = [f["en"] for f in ctx["findings"] if f["kind"] == "gap"]
    assert "Leadership: 1 required task(s) missed or overdue." in gaps
    assert "Emergency response & handling: 1 required task(s) missed or overdue." in gaps
    assert ("Leadership: 1 escalation chain(s) never acknowledged and the task not done "
            "(“Assess grade and scope; decide whether to activate the plan”).") in gaps
    assert "No reviewed public statement was released." in gaps
    goods = [f["en"] for f in ctx["findings"] if f["kind"] == "good"]
    assert goods == ["1 task(s) were done on time."]
    summary = {r["group"]: r for r in ctx["group_summary"]}
    assert (summary["monitoring"]["on_time"], summary["monitoring"]["not_done"]) == (1, 0)
    assert (summary["leadership"]["on_time"], summary["leadership"]["not_done"]) == (0, 1)
    text = reports.render("after_action", ctx, "zh-CN")
    assert "# 复盘报告：网传\\|测试 事件" in text  # the title is data: its pipe is escaped
    assert "| 发现 → 报告领导小组 | 26m |" in text
    assert "| 领导小组 | 0 | 0 | 1 | - |" in text
    assert "| 03-14 21:26 | 林值班 | 阶段变更：事件监测 → 已报告 |" in text


def test_an_open_task_not_yet_due_is_not_a_gap(svc, advance):
    inc = svc.open_incident(title="fresh", category="medical_dispute", principal=P("duty_officer"), severity="II")
    advance(minutes=5)
    ctx = reports.report_context(svc, inc.id)
    assert [(f["zh"], f["en"], f["group"]) for f in ctx["findings"] if f["kind"] == "gap"] == [
        ("未发布任何经审核的对外声明。", "No reviewed public statement was released.", "monitoring")]
    assert all(not t["overdue"] for t in ctx["tasks"])


def test_statement_clock_met_for_a_major_event(svc, advance):
    inc = svc.open_incident(title="clock", category="medical_dispute", principal=P("duty_officer"), severity="I")
    st = svc.draft_statement(inc.id, title="情况通报", body="网传…，高度重视。下一步将及时通报。",
                             principal=P("publicity_head"), next_update="24小时内")
    for reviewer in ("info_staff", "info_head", "president"):
        svc.review_statement(st.id, principal=P(reviewer), approve=True)
    advance(hours=4)
    svc.release_statement(st.id, principal=P("publicity_head"))
    ctx = reports.report_context(svc, inc.id)
    assert ctx["clocks"] == [{"metric": "time_to_first_statement", "label": ctx["clocks"][0]["label"],
                              "limit_seconds": 5 * 3600, "value_seconds": 4 * 3600.0, "status": "met",
                              "since": "opened"}]
    text = reports.render("incident_report", ctx, "zh-CN")
    assert "发布《情况通报》（3 级审核通过），下次通报：24小时内" in text


def test_write_reports_renders_everything_then_writes(svc, incident, tmp_path: Path):
    out = tmp_path / "out"
    written = reports.write_reports(svc, incident, out, tz="Asia/Shanghai")
    assert sorted(p.name for p in written) == sorted([
        "incident_report.zh-CN.md", "incident_report.en.md", "after_action.zh-CN.md", "after_action.en.md",
        "scorecard.json"])
    card = json.loads((out / "scorecard.json").read_text("utf-8"))
    assert card["metrics"] == json.loads(json.dumps(scorecard.build(svc, incident)["metrics"]))
    assert [e["level"] for e in card["escalations"]] == [1, 1]

    with_scenario = reports.write_reports(svc, incident, tmp_path / "drill", scenario={
        "name": "x", "title_zh": "演练", "title_en": "Drill", "file": "x.yaml", "start": "2026-03-14T13:00:00+00:00",
        "duration_seconds": 3600.0, "category": "medical_dispute"}, run={
        "id": "r1", "mode": "instant", "speed": None, "wall_seconds": 0.01, "simulated_seconds": 3600.0})
    names = {p.name for p in with_scenario}
    assert {"scorecard.zh-CN.md", "scorecard.en.md"} <= names
    sc_en = (tmp_path / "drill" / "scorecard.en.md").read_text("utf-8")
    assert sc_en.startswith("# Drill scorecard: Drill")
    assert "| Tasks on time/late/not done/open | 1/0/0/2 (of 4) |" in sc_en


def test_bad_input_is_refused_before_anything_is_written(svc, incident, tmp_path: Path):
    with pytest.raises(InputError, match="unknown report 'minutes'"):
        reports.render("minutes", reports.report_context(svc, incident), "en")
    with pytest.raises(InputError, match="unknown language 'fr'"):
        reports.render("incident_report", reports.report_context(svc, incident), "fr")
    out = tmp_path / "never"
    with pytest.raises(InputError, match="unknown time zone"):
        reports.write_reports(svc, incident, out, tz="Mars/Olympus")
    assert not out.exists()


def test_a_template_typo_fails_loudly(svc, incident, tmp_path: Path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "incident_report.md.j2").write_text("{{ incident.titel }}", "utf-8")
    with pytest.raises(UndefinedError):
        reports.render("incident_report", reports.report_context(svc, incident), "en", templates=tmp_path)


def test_template_field_lookup_is_jinjas(tmp_path: Path):
    """`x.name` on a dict: the item, except under a dict method's name (the method, as in Jinja), and a missing
    one is still a loud error."""
    env = reports.environment(tmp_path)
    data = {"title": "a*b", "items": "shadowed", "n": 3}
    assert env.from_string("{{ d.title }} {{ d.n }} {{ d['items'] }} {{ d.items is callable }}").render(d=data) == (
        "a\\*b 3 shadowed True")
    with pytest.raises(UndefinedError):
        env.from_string("{{ d.titel }}").render(d=data)


def test_a_reworded_template_is_used_after_it_was_rendered_once(svc, incident, tmp_path: Path):
    """The compiled templates are kept between reports; a hospital editing one still sees its edit."""
    (tmp_path / "en").mkdir()
    path = tmp_path / "en" / "incident_report.md.j2"
    path.write_text("first {{ incident.title }}", "utf-8")
    ctx = reports.report_context(svc, incident)
    assert reports.render("incident_report", ctx, "en", templates=tmp_path).startswith("first ")
    path.write_text("second {{ incident.title }}", "utf-8")
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
    assert reports.render("incident_report", ctx, "en", templates=tmp_path).startswith("second ")


def test_reopened_incident_marks_its_second_cycle(svc, advance):
    inc = svc.open_incident(title="反弹", category="medical_dispute", principal=P("duty_officer"), severity="III")
    svc.complete_task(svc.find_task(inc.id, "compile_report").id, principal=P("publicity_head"))
    svc.fire(inc.id, "report", principal=P("duty_officer"))
    svc.fire(inc.id, "assess", principal=P("president"), decision="watch", override=True, reason="热度不高，持续关注")
    advance(hours=5)
    svc.fire(inc.id, "reopen", principal=P("duty_officer"), note="热度反弹")
    ctx = reports.report_context(svc, inc.id)
    zh = reports.render("incident_report", ctx, "zh-CN")
    en = reports.render("scorecard", ctx, "en")
    assert "| 当前阶段 | 已报告（第 2 轮，曾因舆情反弹重新启动） |" in zh
    assert "| 已报告（第2轮） | 研判事件等级与范围" in zh
    assert "| Reported (cycle 2) | Leadership | Assess grade and scope" in en
    # the first cycle's tasks carry no mark; the watch task running at the flare-up was stopped
    assert "| 已报告 | 研判事件等级与范围" in zh
    (watch,) = [t for t in ctx["tasks"] if t["stage"] == "watch"]
    assert (watch["cycle"], watch["status"]) == (1, "cancelled")


def test_template_calls_keep_jinjas_meaning_on_the_direct_path(tmp_path):
    """Plain functions are called straight (reports._Context); marked ones still get their context, and a
    StopIteration still renders as undefined (strict: it fails loudly), as with Jinja's own Context.call."""
    from jinja2 import pass_context

    (tmp_path / "t.j2").write_text("{{ plain(1, b=2) }} {{ marked() }}|{{ stop() }}", encoding="utf-8")
    env = reports.environment(tmp_path)

    def stop():
        raise StopIteration

    page = env.get_template("t.j2")
    args = {"plain": lambda a, b: a + b, "marked": pass_context(lambda ctx: ctx["who"]), "stop": stop, "who": "x"}
    with pytest.raises(UndefinedError, match="StopIteration"):
        page.render(**args)
    args["stop"] = lambda: "done"
    assert page.render(**args) == "3 x|done"
