"""After-action findings and the improvement plan, derived only from the recorded facts.

Findings say what went well and what did not (no hand-written verdicts). Each gap carries the
group that owns the fix, a corrective action and a due period, so the improvement plan follows the
layout hospital facilitators know from HSEEP / CMS emergency-preparedness after-action reports
(AAR/IP): issue, corrective action, responsible group, completion date.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from crisis.durations import format_duration
from crisis.labels import GROUPS, label
from crisis.narrative import Lookup
from crisis.severity import Severity

Finding = dict[str, Any]


def not_done(t: dict[str, Any]) -> bool:
    """Required and not done: missed outright, or still open past its deadline."""
    return bool(t["required"] and (t["outcome"] == "missed" or t.get("overdue")))


def group_summary(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for g in GROUPS:
        mine = [t for t in tasks if t["group"] == g]
        if mine:
            out.append({"group": g, "on_time": sum(t["outcome"] == "on_time" for t in mine),
                        "late": sum(t["outcome"] == "late" for t in mine),
                        "not_done": sum(not_done(t) for t in mine),
                        "worst_late_seconds": max((t["late_seconds"] or 0 for t in mine), default=0) or None})
    return out


def clock_checks(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The public-response clocks from regulation and practice, met or not (domain README §6)."""
    m = card["metrics"]
    if m.get("final_stage") in ("watch", "dismissed"):
        return []
    major = Severity(card["incident"]["severity"]).rank <= 2
    metric = "time_to_first_statement"
    if major:
        limit_s, label_ = 5 * 3600, {"zh": "重大事件 5 小时内发布权威信息",
                                     "en": "authoritative information within 5 h (major event)"}
    else:
        limit_s, label_ = 48 * 3600, {"zh": "48 小时内回应关切", "en": "public concerns answered within 48 h"}
    value, since = _since_cycle_start(card)
    if since == "reopened":
        label_ = {"zh": label_["zh"] + "（自重新启动起算）", "en": label_["en"] + " (from the reopen)"}
    status = "pending" if value is None else ("met" if value <= limit_s else "missed")
    return [{"metric": metric, "label": label_, "limit_seconds": limit_s, "value_seconds": value, "status": status,
             "since": since}]


def _since_cycle_start(card: dict[str, Any]) -> tuple[float | None, str]:
    """Seconds to the first release, counted from the start of the cycle it was released in: a reopen
    restarts the public-response clock (the flare-up is a new demand for information)."""
    released = sorted(s["released_at"] for s in card["statements"] if s.get("released_at"))
    reopens = [e["at"] for e in card["timeline"]
               if e["kind"] == "stage_changed" and e["data"].get("trigger") == "reopen"]
    start, since = card["incident"]["opened_at"], "opened"
    for at in reopens:
        if not released or at <= released[0]:
            start, since = at, "reopened"
    if not released:
        return None, since
    return (datetime.fromisoformat(released[0]) - datetime.fromisoformat(start)).total_seconds(), since


def _gap(zh: str, en: str, *, code: str, group: str, action_zh: str, action_en: str, due_days: int) -> Finding:
    return {"kind": "gap", "zh": zh, "en": en, "code": code, "group": group,
            "action": {"zh": action_zh, "en": action_en}, "due_days": due_days}


def _titles(rows: list[dict[str, Any]], lang: str, key: str = "title") -> str:
    """Task titles, each quoted (titles contain commas of their own)."""
    if lang == "zh":
        return "、".join(f"「{t}」" for t in dict.fromkeys(r[key] for r in rows))
    return "; ".join(f"“{t}”" for t in dict.fromkeys(r[f"{key}_en"] for r in rows))


def findings(card: dict[str, Any], look: Lookup, group_of: dict[str, str]) -> list[Finding]:
    """Good points, gaps (each with owner and corrective action) and other observations."""
    out: list[Finding] = []
    tasks, m = card["tasks"], card["metrics"]
    on_time = [t for t in tasks if t["outcome"] == "on_time"]
    if on_time:
        out.append({"kind": "good", "zh": f"{len(on_time)} 项任务按时完成。",
                    "en": f"{len(on_time)} task(s) were done on time."})
    out += _task_gaps(tasks)
    out += _chain_findings(card["chains"])
    out += _decision_findings(card["timeline"], look, group_of)
    if m["statements_released"] == 0 and m["final_stage"] not in ("watch", "dismissed"):
        out.append(_gap("未发布任何经审核的对外声明。", "No reviewed public statement was released.",
                        code="no_statement", group="monitoring", due_days=14,
                        action_zh="建立情况通报模板库，按「2 小时内提出口径与通稿报批」演练三级审核流程。",
                        action_en="Keep statement templates ready and rehearse the three-level review so a draft "
                                  "goes for approval within 2 h."))
    for c in clock_checks(card):
        took = format_duration(c["value_seconds"])
        if c["status"] == "missed":
            out.append(_gap(f"未达到时限：{c['label']['zh']}（实际 {took}）。",
                            f"Clock missed: {c['label']['en']} (took {took}).", code="clock_missed",
                            group="monitoring", due_days=14,
                            action_zh="梳理发布审核各环节用时，明确夜间与节假日的审核人 A/B 角。",
                            action_en="Time each step of the release review and name night and holiday "
                                      "stand-ins for every reviewer."))
        elif c["status"] == "met":
            out.append({"kind": "good", "zh": f"达到时限：{c['label']['zh']}（{took}）。",
                        "en": f"Clock met: {c['label']['en']} ({took})."})
    if m.get("median_answer_seconds") is not None:
        med = format_duration(m["median_answer_seconds"])
        out.append({"kind": "info", "zh": f"升级提醒从首次发出到有人响应（确认或完成任务）用时中位数 {med}。",
                    "en": f"Median time from the first reminder to a response (acknowledged or done): {med}."})
    return out


def _task_gaps(tasks: list[dict[str, Any]]) -> list[Finding]:
    out = []
    for g, (zh_g, en_g) in GROUPS.items():
        late = [t for t in tasks if t["group"] == g and t["outcome"] == "late"]
        missed = [t for t in tasks if t["group"] == g and not_done(t)]
        if not (late or missed):
            continue
        worst = format_duration(max((t["late_seconds"] or 0 for t in late), default=0))
        zh = "，".join(([f"{len(late)} 项任务超时（最长 {worst}）"] if late else []) +
                      ([f"{len(missed)} 项必做任务未完成或已逾期"] if missed else []))
        en = ", ".join(([f"{len(late)} task(s) late (worst {worst})"] if late else []) +
                       ([f"{len(missed)} required task(s) missed or overdue"] if missed else []))
        out.append(_gap(f"{zh_g}：{zh}。", f"{en_g}: {en}.", code="group_tasks", group=g, due_days=30,
                        action_zh=f"复核本组值守与 A/B 角安排，逐项明确{_titles(late + missed, 'zh')}的责任人和"
                                  "完成时限，并在下次演练中复训。",
                        action_en=f"Review the group's duty and stand-in arrangements; name an owner and a deadline "
                                  f"for: {_titles(late + missed, 'en')}; rehearse them in the next drill."))
    return out


def _chain_findings(chains: list[dict[str, Any]]) -> list[Finding]:
    out: list[Finding] = []
    if chains and all(c["answer"] for c in chains):
        out.append({"kind": "good", "zh": f"全部 {len(chains)} 条升级提醒链均有人响应（确认或完成任务）。",
                    "en": f"All {len(chains)} escalation chain(s) were answered (acknowledged or task done)."})
    for g, (zh_g, en_g) in GROUPS.items():
        silent = [c for c in chains if c["group"] == g and not c["answer"]]
        if silent:
            titles, titles_en = _titles(silent, "zh", "task_title"), _titles(silent, "en", "task_title")
            out.append(_gap(
                f"{zh_g}：{len(silent)} 条升级提醒链始终无人确认、任务也未完成（{titles}）。",
                f"{en_g}: {len(silent)} escalation chain(s) never acknowledged and the task not done ({titles_en}).",
                code="unanswered_chains", group=g, due_days=14,
                action_zh="收到升级提醒后须立即确认或完成任务；组长每周抽查提醒的确认情况。",
                action_en="Acknowledge or complete as soon as a reminder arrives; the group head checks "
                          "acknowledgements weekly."))
    on_call = [c for c in chains if c["reached_on_call"]]
    if on_call:
        out.append(_gap(
            f"{len(on_call)} 项任务的升级提醒一直升到值班管理员：{_titles(on_call, 'zh', 'task_title')}。",
            f"{len(on_call)} task(s) escalated all the way to the on-call administrator: "
            f"{_titles(on_call, 'en', 'task_title')}.",
            code="reached_on_call", group="leadership", due_days=14,
            action_zh="核对升级链各级人员的联系方式与值守安排，确保提醒在到达值班管理员之前得到响应。",
            action_en="Check the contacts and duty cover of every level of the escalation chain so reminders are "
                      "answered before they reach the on-call administrator."))
    return out


def _decision_findings(timeline: list[dict[str, Any]], look: Lookup, group_of: dict[str, str]) -> list[Finding]:
    """Watch decisions, reopens, overrides and refused actions, each named with who, when and why."""
    out: list[Finding] = []
    for e in timeline:
        d, who_zh, who_en = e["data"], look.person(e["actor"], "zh"), look.person(e["actor"], "en")
        if e["kind"] == "stage_changed" and d.get("decision") in ("watch", "dismiss"):
            dec_zh, dec_en = label("decision", d["decision"], "zh-CN"), label("decision", d["decision"], "en")
            note_zh, note_en = (f"；{d['note']}", f"; {d['note']}") if d.get("note") else ("", "")
            out.append({"kind": "info", "zh": f"{who_zh}研判决定：{dec_zh}{note_zh}。",
                        "en": f"{who_en} decided: {dec_en}{note_en}."})
        elif e["kind"] == "stage_changed" and d.get("trigger") == "reopen":
            was_zh, was_en = label("stage", e["from_state"], "zh-CN"), label("stage", e["from_state"], "en")
            note_zh, note_en = (f"（{d['note']}）", f" ({d['note']})") if d.get("note") else ("", "")
            out.append(_gap(f"事件在「{was_zh}」阶段因舆情反弹重新启动，进入第 {d.get('cycle')} 轮{note_zh}。",
                            f"The incident flared up while in '{was_en}' and was reopened (cycle "
                            f"{d.get('cycle')}){note_en}.", code="reopen", group="monitoring", due_days=30,
                            action_zh="对持续关注或已结案的事件设定复评阈值和复评时点，由监测与分析组按时报告。",
                            action_en="Set re-assessment thresholds and dates for watched or closed incidents; "
                                      "the monitoring group reports against them."))
        elif e["kind"] == "override":
            waived_zh = "、".join(f"「{look.task(e, 'zh', k)}」" for k in d.get("waived") or []) or "-"
            waived_en = "; ".join(f"“{look.task(e, 'en', k)}”" for k in d.get("waived") or []) or "-"
            out.append(_gap(f"{who_zh}在必做任务未完成时越级推进，理由：{d.get('reason') or '-'}；豁免：{waived_zh}。",
                            f"{who_en} overrode open required tasks; reason: {d.get('reason') or '-'}; waived: "
                            f"{waived_en}.", code="override", group="leadership", due_days=30,
                            action_zh="复核越级推进的理由；被豁免的必做任务补做或说明，必要时修订预案。",
                            action_en="Review the override; complete or account for each waived task, and amend "
                                      "the playbook if the task did not fit."))
        elif e["kind"] == "drill_action_rejected":
            action_zh, action_en = label("trigger", d.get("action"), "zh-CN"), label("trigger", d.get("action"), "en")
            out.append(_gap(f"{who_zh}的操作「{action_zh}」被系统拒绝（越权、顺序错误或前置任务未完成）。",
                            f"{who_en}'s action '{action_en}' was refused: {d.get('text') or ''}",
                            code="rejected_action", group=group_of.get(e["actor"], "leadership"), due_days=30,
                            action_zh="对相关人员开展预案流程与权限培训。",
                            action_en="Train the people concerned on the playbook's order and who may do what."))
    return out


def improvement_plan(found: list[Finding], issued_at: datetime) -> list[dict[str, Any]]:
    """AAR/IP rows: one per gap, numbered, with the owner group and a completion date."""
    rows = []
    for i, f in enumerate((f for f in found if f["kind"] == "gap"), start=1):
        rows.append({"no": i, "issue": {"zh": f["zh"], "en": f["en"]}, "action": f["action"], "group": f["group"],
                     "code": f["code"], "due": (issued_at + timedelta(days=f["due_days"])).isoformat()})
    return rows
