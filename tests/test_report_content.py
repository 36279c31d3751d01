"""Reports fit to hand to the leadership: the facts, in the reader's language, with chains counted as
people experience them, and an improvement plan derived from the gaps (issue 10 item 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crisis import labels, reports
from crisis.durations import format_duration
from crisis.principal import Principal as P


@pytest.fixture()
def eventful(svc, advance):
    """A grade III dispute with notes, an inject, a watch decision, a flare-up, escalations answered by
    completing the task and left unanswered, a regrade with override, and a statement sent back."""
    inc = svc.open_incident(title="网传我院护士态度恶劣", category="medical_dispute", principal=P("duty_officer"),
                            severity="III", signals={"reposts": 120, "views": 18000},
                            source_url="https://weibo.example/9")
    advance(minutes=5)
    svc.complete_task(svc.find_task(inc.id, "preserve_evidence").id, principal=P("info_staff"), note="原帖已截图存证")
    advance(minutes=5)
    svc.update_signals(inc.id, {"reposts": 900}, principal=P("info_staff"), note="转发快速上升")
    advance(minutes=5)
    svc.drill_inject(inc.id, "家属到院聚集 / Relatives gather at the hospital", inject="crowd")
    svc.complete_task(svc.find_task(inc.id, "compile_report").id, principal=P("publicity_head"))
    svc.fire(inc.id, "report", principal=P("duty_officer"))
    svc.fire(inc.id, "assess", principal=P("president"), decision="watch", override=True, reason="热度不高，持续关注")
    advance(hours=5)
    svc.fire(inc.id, "reopen", principal=P("duty_officer"), note="热度反弹")
    for minutes in (121, 10, 10, 10, 10):  # past the grade III deadline (2 h), then up the chains
        advance(minutes=minutes)
        svc.tick()
    svc.complete_task(svc.find_task(inc.id, "verify_facts").id, principal=P("medical_affairs"), note="诊疗经过已核实")
    svc.note(inc.id, "drill_action_rejected", "illegal trigger 'media' in stage 'reported'",
             principal=P("duty_officer"), action="media")
    svc.fire(inc.id, "assess", principal=P("president"), decision="activate", severity="II", override=True,
             reason="院长指示先行处置")
    st = svc.draft_statement(inc.id, title="情况说明", body="网传…，高度重视。", principal=P("publicity_head"),
                             next_update="24小时内 / within 24 h")
    svc.review_statement(st.id, principal=P("info_staff"), approve=True)
    svc.review_statement(st.id, principal=P("info_head"), approve=False, comment="口径需与医务部统一")
    return inc.id


ALLOWED_ASCII = {"Asia", "Shanghai", "https", "weibo", "example", "III"}  # zone, source URL, grade III


def ascii_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[A-Za-z_]{3,}", text) if w not in ALLOWED_ASCII}


def test_chinese_reports_contain_no_english_keys_or_raw_decisions(svc, eventful):
    ctx = reports.report_context(svc, eventful, tz="Asia/Shanghai")
    keys = {t["key"] for t in ctx["tasks"]}
    for kind in reports.KINDS:
        text = reports.render(kind, ctx, "zh-CN")
        assert ascii_words(text) == set(), kind  # no task key, decision, signal, actor or engine message
        for word in [*keys, "activate", "watch", "dismiss", "reposts", "views", "system", "drill", "illegal"]:
            assert not re.search(rf"\b{word}\b", text), (kind, word)
    zh = reports.render("incident_report", ctx, "zh-CN")
    assert "阶段变更：已报告 → 持续关注（决定：观察）（王院长）" in zh
    assert "等级调整：III级 → II级（王院长）" in zh
    assert "理由：院长指示先行处置；豁免必做任务：「研判事件等级与范围，决定是否启动预案」" in zh
    assert "| 时间 | 转发量 | 阅读量 |" in zh
    assert "下次对外通报" not in zh  # nothing released yet


def test_incident_report_facts_show_notes_injects_and_signal_trend(svc, eventful):
    ctx = reports.report_context(svc, eventful, tz="Asia/Shanghai")
    zh = reports.render("incident_report", ctx, "zh-CN")
    facts = zh.split("## 一、基本情况")[1].split("## 二、")[0]
    assert "21:05 刘工（任务完成）：「截图存证原帖及转评」：原帖已截图存证" in facts
    assert "21:10 刘工（舆情数据更新）：转发量 120 → 900（转发快速上升）" in facts
    assert "21:15 演练导调组（演练注入）：家属到院聚集" in facts
    assert "Relatives" not in zh
    assert "刘工（任务完成）" in facts and "诊疗经过已核实" in facts
    assert "王院长（越级推进）：理由：热度不高，持续关注" in facts
    assert "赵主任（声明审核）：第 2 级审核退回：口径需与医务部统一" in facts
    assert "**舆情数据**：转发量 120 → 900（峰值 900，上升）；阅读量 18,000 → 18,000（峰值 18,000，持平）。" in facts
    en = reports.render("incident_report", ctx, "en")
    assert "(drill inject): Relatives gather at the hospital" in en
    assert "reposts 120 → 900 (peak 900, rising)" in en


def test_never_acknowledged_counts_chains_and_completion_answers_a_page(svc, eventful):
    ctx = reports.report_context(svc, eventful)
    m, chains = ctx["metrics"], {c["task"]: c for c in ctx["chains"]}
    assert m["escalations_fired"] > len(chains) == m["escalation_chains"] == 2  # several levels per chain
    assert (chains["verify_facts"]["answer"], chains["verify_facts"]["answered_by"]) == ("completed",
                                                                                         "medical_affairs")
    assert chains["assess_severity"]["answer"] is None  # waived by the override, nobody ever picked it up
    assert (m["chains_answered"], m["chains_unanswered"]) == (1, 1)
    gaps = [f["zh"] for f in ctx["findings"] if f["kind"] == "gap"]
    assert "领导小组：1 条升级提醒链始终无人确认、任务也未完成（「研判事件等级与范围，决定是否启动预案」）。" in gaps
    assert not any("应急响应与处置组：" in g and "无人确认" in g for g in gaps)  # verify_facts was done
    zh = reports.render("incident_report", ctx, "zh-CN")
    assert "由 吴主任 完成任务" in zh


def test_after_action_improvement_plan_and_decision_findings(svc, eventful):
    ctx = reports.report_context(svc, eventful, tz="Asia/Shanghai")
    plan = ctx["improvement_plan"]
    gaps = [f for f in ctx["findings"] if f["kind"] == "gap"]
    assert [r["no"] for r in plan] == list(range(1, len(gaps) + 1))
    assert {r["code"] for r in plan} >= {"override", "reopen", "unanswered_chains", "rejected_action"}
    for row in plan:
        assert row["action"]["zh"] and row["action"]["en"] and row["group"] in labels.GROUPS and row["due"]
    infos = [f["zh"] for f in ctx["findings"] if f["kind"] == "info"]
    assert "王院长研判决定：观察。" in infos
    zh = reports.render("after_action", ctx, "zh-CN")
    assert "## 六、改进计划" in zh and "| 序号 | 存在问题 | 改进措施 | 责任组 | 完成时限 |" in zh
    assert "事件在「持续关注」阶段因舆情反弹重新启动，进入第 2 轮（热度反弹）。" in zh
    assert "王院长在必做任务未完成时越级推进，理由：院长指示先行处置" in zh
    assert "林值班的操作「转入媒体沟通」被系统拒绝" in zh
    override = next(r for r in plan if r["code"] == "override")
    row = rf"\| {override['no']} \| .*越级推进.* \| 复核越级推进的理由.* \| 领导小组 \| 2026-\d\d-\d\d \|"
    assert re.search(row, zh)
    en = reports.render("after_action", ctx, "en")
    assert "| No. | Issue | Corrective action | Owner group | Due |" in en
    assert "action 'move to media liaison' was refused: illegal trigger 'media' in stage 'reported'" in en


def test_durations_keep_their_minutes():
    assert format_duration(2 * 86400 + 5 * 3600 + 30 * 60) == "2d05h30m"
    assert format_duration(86400 + 30 * 60) == "1d00h30m"
    assert (format_duration(3 * 86400), format_duration(86400 + 3600)) == ("3d", "1d01h")


def test_bilingual_free_text_picks_the_reader_language():
    assert labels.pick("示例医院 / Example Hospital", "zh-CN") == "示例医院"
    assert labels.pick("示例医院 / Example Hospital", "en") == "Example Hospital"
    assert labels.pick({"zh": "甲", "en": "A"}, "en") == "A"
    assert labels.pick("a / b", "zh-CN") == "a / b"  # not bilingual: shown as written
    assert labels.label("decision", "watch", "zh-CN") == "观察"
    assert labels.label("signal", "unknown_metric", "zh-CN") == "unknown_metric"


def test_json_report_scorecard_json_and_drill_json_carry_the_same_keys(svc, eventful, tmp_path: Path):
    from typer.testing import CliRunner

    from crisis import cli
    from crisis.cli import common

    ctx = reports.report_context(svc, eventful)
    reports.write_context(ctx, tmp_path / "r")
    card = json.loads((tmp_path / "r" / "scorecard.json").read_text("utf-8"))
    assert list(card) == list(reports.DOCUMENT_KEYS)
    common._state.clear()
    root = Path(__file__).resolve().parents[1]
    res = CliRunner().invoke(cli.app, ["drill", "run", str(root / "examples" / "drills" / "nobody-acts.yaml"),
                                       "--out", str(tmp_path / "d"), "--db", f"sqlite:///{tmp_path / 'd.db'}",
                                       "--json"])
    assert res.exit_code == 0, res.output
    drill = json.loads(res.stdout)
    assert list(drill) == list(reports.DOCUMENT_KEYS)
    assert list(json.loads((tmp_path / "d" / "scorecard.json").read_text("utf-8"))) == list(reports.DOCUMENT_KEYS)
    assert drill["metrics"]["chains_unanswered"] == drill["metrics"]["escalation_chains"] > 0



def test_carried_and_applicable_duties_read_as_titles_with_reasons(svc, advance):
    """Violence on the premises: duties carried from stage to stage and a task marked applicable are
    told with their titles, stages and reason, in Chinese without engine keys."""
    inc = svc.open_incident(title="患者家属在急诊殴打医生", category="workplace_violence",
                            principal=P("duty_officer"), severity="II")
    advance(minutes=3)
    posts = svc.find_task(inc.id, "capture_posts")
    svc.mark_applicable(posts.id, reason="视频已在微博传播，须存证", principal=P("president"))
    svc.complete_task(posts.id, principal=P("info_staff"))
    svc.complete_task(svc.find_task(inc.id, "compile_report").id, principal=P("publicity_head"))
    svc.fire(inc.id, "report", principal=P("duty_officer"))  # the police and scene duties carry over
    ctx = reports.report_context(svc, inc.id, tz="Asia/Shanghai")
    zh = reports.render("incident_report", ctx, "zh-CN")
    assert ascii_words(zh) <= {"II"}  # only the grade
    facts = zh.split("## 一、基本情况")[1].split("## 二、")[0]
    assert "王院长（任务标记为适用）：「截图存证网传视频及评论」：视频已在微博传播，须存证" in facts
    carried = [e["what"]["zh"] for e in ctx["timeline"] if e["kind"] == "task_carried"]
    assert "「立即拨打110报警并保护现场」（事件监测 → 已报告）" in carried


def test_pdf_html_keeps_user_text_as_text():
    from crisis.report_pdf import css_string, to_html

    page = to_html("# 标题\n\n| a |\n|---|\n| <script>x</script> |\n", organisation='医院"}; body{display:none',
                   title="舆情专报", lang="zh-CN")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert css_string('医院"}; body{display:none') == '"医院\\"}; body{display:none"'
    assert '@top-left { content: "医院\\"}; body{display:none"' in page
    assert "</style><b>" not in to_html("x", organisation="</style><b>", title="t", lang="en")
    assert css_string("</style>") == '"\\3c /style>"'


def test_public_response_clock_restarts_at_the_reopen(svc, advance):
    """Watched for two days, then a flare-up: the 5 h clock runs from the reopen, not from the first post."""
    inc = svc.open_incident(title="复燃", category="medical_dispute", principal=P("duty_officer"), severity="I")
    svc.complete_task(svc.find_task(inc.id, "compile_report").id, principal=P("publicity_head"))
    svc.fire(inc.id, "report", principal=P("duty_officer"))
    svc.fire(inc.id, "assess", principal=P("president"), decision="watch", override=True, reason="热度不高")
    advance(hours=48)
    svc.fire(inc.id, "reopen", principal=P("duty_officer"), note="热度反弹")
    st = svc.draft_statement(inc.id, title="情况通报", body="网传…，高度重视。下一步将及时通报。",
                             principal=P("publicity_head"), next_update="24小时内")
    for reviewer in ("info_staff", "info_head", "president"):
        svc.review_statement(st.id, principal=P(reviewer), approve=True)
    advance(hours=3)
    svc.release_statement(st.id, principal=P("publicity_head"))
    ctx = reports.report_context(svc, inc.id)
    (clock,) = ctx["clocks"]
    assert (clock["value_seconds"], clock["status"], clock["since"]) == (3 * 3600.0, "met", "reopened")
    assert clock["label"]["zh"] == "重大事件 5 小时内发布权威信息（自重新启动起算）"
    assert ctx["metrics"]["time_to_first_statement_seconds"] == 51 * 3600.0  # the metric still counts from opening
