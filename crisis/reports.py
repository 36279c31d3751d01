"""Rendered reports: the incident report (舆情专报), the after-action review and the drill scorecard.

Templates live under `templates/<lang>/<kind>.md.j2` so a hospital can re-word them without code.
The context is the scorecard (one source of figures for CLI, JSON and reports) plus findings
computed here, so templates only lay things out and never decide anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from crisis import scorecard
from crisis.config import zone
from crisis.durations import format_duration
from crisis.engine.fsm import STAGE_NAMES
from crisis.errors import InputError
from crisis.roster import GROUP_NAMES
from crisis.service import CrisisService
from crisis.severity import Severity
from crisis.store.db import ROOT

KINDS = ("incident_report", "after_action", "scorecard")
LANGS = ("zh-CN", "en")
TEMPLATES = ROOT / "templates"

# Event kinds that are noise in a report's narrative (they are in the tables instead).
_QUIET = {"task_assigned", "task_cancelled", "task_regraded"}


def environment(templates: Path = TEMPLATES) -> Environment:
    """Markdown output: no HTML autoescaping, but a strict undefined so a typo in a template fails loudly."""
    env = Environment(loader=FileSystemLoader(str(templates)), undefined=StrictUndefined, autoescape=False,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["cell"] = cell
    env.filters["dur"] = format_duration
    env.filters["num"] = num
    return env


def cell(value: object) -> str:
    """Make any text safe inside a Markdown table cell."""
    if value is None or value == "":
        return "-"
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def num(value: object) -> str:
    """Counts read from YAML or JSON may arrive as floats; show 1500, not 1500.0."""
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def _helpers(lang: str, tz_name: str, names: dict[str, str]) -> dict[str, Callable[..., str]]:
    tz = zone(tz_name)
    zh = lang == "zh-CN"

    def when(iso: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime(fmt) if iso else "-"

    def stage(key: str | None) -> str:
        pair = STAGE_NAMES.get(key or "")
        return (pair[0] if zh else pair[1]) if pair else (key or "-")

    def group(key: str | None) -> str:
        pair = GROUP_NAMES.get(key or "")
        return (pair[0] if zh else pair[1]) if pair else (key or "-")

    def sev(value: str | None) -> str:
        if not value:
            return "-"
        s = Severity(value)
        if zh:
            return f"{s.value}级（{s.label_zh}，{_COLOUR_ZH[s.colour]}）"
        return f"grade {s.value} ({s.label_en}, {s.colour})"

    def person(pid: str | None) -> str:
        return names.get(pid or "", pid or "-")

    def text(pair: dict[str, str]) -> str:
        return pair["zh" if zh else "en"]

    def kind(key: str) -> str:
        pair = EVENT_NAMES.get(key)
        return (pair[0] if zh else pair[1]) if pair else key

    return {"when": when, "stage": stage, "group": group, "sev": sev, "person": person, "text": text,
            "kind": kind}


EVENT_NAMES = {
    "incident_opened": ("事件登记", "incident opened"),
    "stage_changed": ("阶段变更", "stage changed"),
    "severity_changed": ("等级调整", "grade changed"),
    "override": ("越级推进", "override"),
    "signals_updated": ("舆情数据更新", "signals updated"),
    "task_done": ("任务完成", "task done"),
    "task_waived": ("任务豁免", "task waived"),
    "escalation_fired": ("超时升级", "escalation"),
    "escalation_acknowledged": ("升级已确认", "escalation acknowledged"),
    "statement_drafted": ("声明起草", "statement drafted"),
    "statement_reviewed": ("声明审核", "statement reviewed"),
    "statement_released": ("声明发布", "statement released"),
    "inject": ("演练注入", "drill inject"),
    "drill_action_rejected": ("操作被拒", "action refused"),
}

_COLOUR_ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}


def report_context(svc: CrisisService, incident_id: int, *, tz: str = "Asia/Shanghai",
                   scenario: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
                   expectations: list[scorecard.Expectation] | None = None, finished: bool = True,
                   now: datetime | None = None) -> dict[str, Any]:
    """Everything a template may show, as plain data (also what `--json` callers could reuse)."""
    zone(tz)  # fail early on a bad zone, before anything is written
    card = scorecard.build(svc, incident_id, expectations=expectations, finished=finished)
    inc = card["incident"]
    names = {p.id: p.name for p in svc.roster.people}
    at = now or svc.clock.now()  # drill time in a drill, wall time otherwise
    issued = at.isoformat()
    events = card["timeline"]
    playbook = svc.playbooks.get(inc["category"]) if inc["category"] in svc.playbooks.categories else None
    signal_history = [{"at": e["at"], "offset_seconds": e["offset_seconds"],
                       "signals": e["data"].get("after" if e["kind"] == "signals_updated" else "signals") or {}}
                      for e in events if e["kind"] in ("incident_opened", "signals_updated")]
    tasks = [{**t, "overdue": t["status"] == "open" and t["due_at"] is not None
              and datetime.fromisoformat(t["due_at"]) < at} for t in card["tasks"]]
    card = {**card, "tasks": tasks}
    by_group = {g: [t for t in tasks if t["group"] == g] for g in GROUP_NAMES}
    open_tasks = sorted((t for t in tasks if t["status"] == "open"), key=lambda t: t["due_at"] or "~")
    released = [s for s in card["statements"] if s["status"] == "released"]
    return {
        "organisation": svc.roster.organisation,
        "issued_at": issued,
        "tz": tz,
        "scenario": scenario,
        "run": run,
        "incident": inc,
        "category_name": {"zh": playbook.name.zh, "en": playbook.name.en} if playbook else
        {"zh": inc["category"], "en": inc["category"]},
        "tasks": tasks,
        "tasks_by_group": by_group,
        "group_summary": group_summary(tasks),
        "open_tasks": open_tasks,
        "escalations": card["escalations"],
        "statements": card["statements"],
        "released": released,
        "next_update": released[-1]["next_update"] if released else None,
        "expectations": card["expectations"],
        "metrics": card["metrics"],
        "timeline": [e for e in events if e["kind"] not in _QUIET],
        "stage_history": [e for e in events if e["kind"] == "stage_changed"],
        "signal_history": signal_history,
        "clocks": clock_checks(card),
        "findings": findings(card),
        "names": names,
    }


def _not_done(t: dict[str, Any]) -> bool:
    """Required and not done: missed outright, or still open past its deadline."""
    return bool(t["required"] and (t["outcome"] == "missed" or t.get("overdue")))


def group_summary(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for g in GROUP_NAMES:
        mine = [t for t in tasks if t["group"] == g]
        if mine:
            out.append({"group": g, "on_time": sum(t["outcome"] == "on_time" for t in mine),
                        "late": sum(t["outcome"] == "late" for t in mine),
                        "not_done": sum(_not_done(t) for t in mine),
                        "worst_late_seconds": max((t["late_seconds"] or 0 for t in mine), default=0) or None})
    return out


def clock_checks(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The public-response clocks from regulation and practice, met or not (domain README §6)."""
    m = card["metrics"]
    major = Severity(card["incident"]["severity"]).rank <= 2
    clocks = [("time_to_first_statement", 5 * 3600,
               {"zh": "重大事件 5 小时内发布权威信息", "en": "authoritative information within 5 h (major event)"})
              if major else
              ("time_to_first_statement", 48 * 3600,
               {"zh": "48 小时内回应关切", "en": "public concerns answered within 48 h"})]
    if m.get("final_stage") in ("watch", "dismissed"):
        return []
    out = []
    for metric, limit_s, label in clocks:
        value = m.get(f"{metric}_seconds")
        status = "pending" if value is None else ("met" if value <= limit_s else "missed")
        out.append({"metric": metric, "label": label, "limit_seconds": limit_s, "value_seconds": value,
                    "status": status})
    return out


def findings(card: dict[str, Any]) -> list[dict[str, Any]]:
    """What went well and what did not, derived only from recorded facts (no hand-written verdicts)."""
    m, tasks, escs = card["metrics"], card["tasks"], card["escalations"]
    out: list[dict[str, Any]] = []

    def add(kind: str, zh: str, en: str) -> None:
        out.append({"kind": kind, "zh": zh, "en": en})

    late = [t for t in tasks if t["outcome"] == "late"]
    missed = [t for t in tasks if _not_done(t)]
    on_time = [t for t in tasks if t["outcome"] == "on_time"]
    if on_time:
        add("good", f"{len(on_time)} 项任务按时完成。", f"{len(on_time)} task(s) were done on time.")
    for g in GROUP_NAMES:
        g_late = [t for t in late if t["group"] == g]
        g_missed = [t for t in missed if t["group"] == g]
        if g_late or g_missed:
            zh_g, en_g = GROUP_NAMES[g]
            worst = format_duration(max((t["late_seconds"] or 0 for t in g_late), default=0))
            zh_parts = ([f"{len(g_late)} 项任务超时（最长 {worst}）"] if g_late else []) + \
                ([f"{len(g_missed)} 项必做任务未完成或已逾期"] if g_missed else [])
            en_parts = ([f"{len(g_late)} task(s) late (worst {worst})"] if g_late else []) + \
                ([f"{len(g_missed)} required task(s) missed or overdue"] if g_missed else [])
            add("gap", f"{zh_g}：{'，'.join(zh_parts)}。", f"{en_g}: {', '.join(en_parts)}.")
    if m["reached_on_call"]:
        add("gap", f"{m['reached_on_call']} 次升级到达值班管理员，说明责任人、组长和领导小组均未及时响应。",
            f"{m['reached_on_call']} escalation(s) reached the on-call administrator: assignee, group head and "
            "leadership all failed to respond in time.")
    unacked = [e for e in escs if not e["acked_at"]]
    if escs and not unacked:
        add("good", "所有升级提醒均被确认。", "Every escalation was acknowledged.")
    elif unacked:
        add("gap", f"{len(unacked)} 次升级提醒无人确认。", f"{len(unacked)} escalation(s) were never acknowledged.")
    if m["median_ack_seconds"] is not None:
        add("info", f"升级后确认用时中位数 {format_duration(m['median_ack_seconds'])}。",
            f"Median time from escalation to acknowledgement: {format_duration(m['median_ack_seconds'])}.")
    if m["overrides"]:
        add("gap", f"领导小组 {m['overrides']} 次在必做任务未完成时越级推进（已记录理由）。",
            f"Leadership overrode open required tasks {m['overrides']} time(s) (reasons recorded).")
    if m["rejected_actions"]:
        add("gap", f"{m['rejected_actions']} 个操作被系统拒绝（越权、顺序错误或前置任务未完成）。",
            f"{m['rejected_actions']} action(s) were refused (not authorised, out of order, or tasks open).")
    if m["statements_released"] == 0 and m["final_stage"] not in ("watch", "dismissed"):
        add("gap", "未发布任何经审核的对外声明。", "No reviewed public statement was released.")
    for c in clock_checks(card):
        if c["status"] == "missed":
            add("gap", f"未达到时限：{c['label']['zh']}（实际 {format_duration(c['value_seconds'])}）。",
                f"Clock missed: {c['label']['en']} (took {format_duration(c['value_seconds'])}).")
        elif c["status"] == "met":
            add("good", f"达到时限：{c['label']['zh']}（{format_duration(c['value_seconds'])}）。",
                f"Clock met: {c['label']['en']} ({format_duration(c['value_seconds'])}).")
    return out


def render(kind: str, ctx: dict[str, Any], lang: str, *, templates: Path = TEMPLATES) -> str:
    if kind not in KINDS:
        raise InputError(f"unknown report {kind!r} (use {', '.join(KINDS)})", field="kind")
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r} (use {', '.join(LANGS)})", field="lang")
    env = environment(templates)
    try:
        template = env.get_template(f"{lang}/{kind}.md.j2")
    except TemplateNotFound:
        raise InputError(f"template {lang}/{kind}.md.j2 not found under {templates}", file=str(templates)) from None
    return template.render(**ctx, lang=lang, **_helpers(lang, ctx["tz"], ctx["names"]))


def write_reports(svc: CrisisService, incident_id: int, out_dir: Path, *, tz: str = "Asia/Shanghai",
                  scenario: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
                  expectations: list[scorecard.Expectation] | None = None,
                  kinds: tuple[str, ...] | None = None) -> list[Path]:
    """Render every report in every language (all rendered before any is written) plus scorecard.json."""
    ctx = report_context(svc, incident_id, tz=tz, scenario=scenario, run=run, expectations=expectations)
    if kinds is None:
        kinds = KINDS if scenario is not None else ("incident_report", "after_action")
    rendered = {f"{kind}.{lang}.md": render(kind, ctx, lang) for kind in kinds for lang in LANGS}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    card_path = out_dir / "scorecard.json"
    card = {k: ctx[k] for k in ("scenario", "run", "incident", "tasks", "escalations", "statements",
                                "expectations", "metrics", "findings", "clocks")}
    card_path.write_text(json.dumps(card, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    written.append(card_path)
    return written
