"""Timeline events told in words, in zh-CN and en: what the leadership reads instead of engine keys.

Every text here is plain (no Markdown): renderers escape and lay it out. Labels come from
crisis.labels; task keys become task titles, person ids become names, decisions become 启动/观察/排除.
An engine message (e.g. why a drill action was refused) is English and stays out of the Chinese text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crisis.durations import format_duration
from crisis.labels import label, pick, severity

Pair = dict[str, str]  # {"zh": …, "en": …}
LANG = {"zh": "zh-CN", "en": "en"}


@dataclass(frozen=True)
class Lookup:
    """What turns ids into words: roster names and task titles (by id and by key)."""

    names: dict[str, str]
    titles_by_id: dict[int, Pair] = field(default_factory=dict)
    titles_by_key: dict[str, Pair] = field(default_factory=dict)

    @classmethod
    def of(cls, names: dict[str, str], tasks: list[dict[str, Any]]) -> Lookup:
        by_id = {t["id"]: {"zh": t["title"], "en": t["title_en"]} for t in tasks}
        by_key = {t["key"]: {"zh": t["title"], "en": t["title_en"]} for t in tasks}
        return cls(names, by_id, by_key)

    def person(self, pid: str | None, lang: str) -> str:
        """A roster name; the built-in actors (system, drill) in words of the report's language."""
        if pid in self.names:
            return self.names[pid]
        return label("actor", pid, LANG[lang])

    def task(self, event: dict[str, Any], lang: str, key: str | None = None) -> str:
        pair = self.titles_by_id.get(event.get("task_id") or -1) or self.titles_by_key.get(
            key or event["data"].get("key") or "")
        return pair[lang] if pair else (key or event["data"].get("key") or "")


def both(fn: Any, *args: Any) -> Pair:
    return {"zh": fn("zh", *args), "en": fn("en", *args)}


def signal_changes(lang: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    sep = "，" if lang == "zh" else ", "
    parts = [f"{label('signal', k, LANG[lang])} {num(before.get(k))} → {num(v)}" for k, v in after.items()
             if before.get(k) != v]
    return sep.join(parts)


def num(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def describe(event: dict[str, Any], look: Lookup) -> Pair:
    """One event as a short sentence in each language."""
    return {"zh": _describe(event, look, "zh"), "en": _describe(event, look, "en")}


def _describe(e: dict[str, Any], look: Lookup, lang: str) -> str:  # one branch per event kind
    d, zh, lg = e["data"], lang == "zh", LANG[lang]
    kind = e["kind"]
    q = (lambda s: f"「{s}」") if zh else (lambda s: f"“{s}”")
    if kind == "incident_opened":
        return str(d.get("title") or "")
    if kind == "stage_changed":
        text = f"{label('stage', e['from_state'], lg)} → {label('stage', e['to_state'], lg)}"
        if d.get("decision"):
            text += f"（决定：{label('decision', d['decision'], lg)}）" if zh else \
                f" (decision: {label('decision', d['decision'], lg)})"
        return text + (f"；{d['note']}" if zh else f"; {d['note']}") if d.get("note") else text
    if kind == "severity_changed":
        old, new = d.get("from"), d.get("to")
        text = f"{old}级 → {new}级" if zh else f"grade {old} → {new}"
        return text + ((f"；理由：{d['reason']}" if zh else f"; reason: {d['reason']}") if d.get("reason") else "")
    if kind == "override":
        waived = ("、" if zh else ", ").join(q(look.task(e, lang, k)) for k in d.get("waived") or [])
        return (f"理由：{d.get('reason') or '-'}；豁免必做任务：{waived or '-'}" if zh else
                f"reason: {d.get('reason') or '-'}; required tasks waived: {waived or '-'}")
    if kind == "signals_updated":
        text = signal_changes(lang, d.get("before") or {}, d.get("after") or {})
        return text + (f"（{pick(d['note'], lg)}）" if zh else f" ({pick(d['note'], lg)})") if d.get("note") else text
    if kind in ("task_done", "task_waived", "task_cancelled", "task_applicable", "task_carried", "task_regraded",
                "task_assigned"):
        text = q(look.task(e, lang))
        if kind == "task_done" and d.get("late_seconds"):
            text += f"（超时 {format_duration(d['late_seconds'])}）" if zh else \
                f" ({format_duration(d['late_seconds'])} late)"
        if d.get("note") and kind == "task_done":
            text += f"：{d['note']}" if zh else f": {d['note']}"
        if d.get("reason") and kind == "task_applicable":
            text += f"：{d['reason']}" if zh else f": {d['reason']}"
        if kind == "task_carried":
            text += (f"（{label('stage', d.get('from_stage'), lg)} → {label('stage', d.get('to_stage'), lg)}）" if zh
                     else f" ({label('stage', d.get('from_stage'), lg)} → {label('stage', d.get('to_stage'), lg)})")
        return text
    if kind == "escalation_fired":
        who = look.person(d.get("recipient"), lang)
        return (f"{q(look.task(e, lang))}第 {d.get('level')} 级提醒 → {who}" if zh else
                f"{q(look.task(e, lang))} level {d.get('level')} → {who}")
    if kind == "escalation_failed":  # the error itself is an engine message: English report only
        return (f"{q(look.task(e, lang))}第 {d.get('level')} 级提醒未能发出，已报告管理员" if zh else
                f"{q(look.task(e, lang))} level {d.get('level')} could not be sent: {d.get('error') or ''}")
    if kind == "escalation_acknowledged":
        return (f"{q(look.task(e, lang))}第 {d.get('level')} 级提醒" if zh else
                f"{q(look.task(e, lang))} level {d.get('level')}")
    if kind in ("statement_drafted", "statement_released"):
        return f"《{d.get('title')}》" if zh else f"“{d.get('title')}”"
    if kind == "statement_reviewed":
        verdict = label("review", "approve" if d.get("approve") else "reject", lg)
        text = f"第 {d.get('level')} 级审核{verdict}" if zh else f"level {d.get('level')} review {verdict}"
        return text + ((f"：{d['comment']}" if zh else f": {d['comment']}") if d.get("comment") else "")
    if kind == "drill_action_rejected":
        action = label("trigger", d.get("action"), lg)
        # the refusal reason is an engine message in English: only the English report quotes it
        return f"{action}（系统拒绝：权限或顺序不符）" if zh else f"{action}: {d.get('text') or ''}"
    return pick(d.get("text") or d.get("title") or "", lg)


def is_fact(e: dict[str, Any]) -> bool:
    """Events that carry what responders and the scenario said happened (notes, injects, comments)."""
    d, kind = e["data"], e["kind"]
    if kind in ("task_done", "stage_changed", "severity_changed", "task_applicable") and (
            d.get("note") or d.get("reason")):
        return True
    if kind == "signals_updated":
        return bool(d.get("note")) and e["actor"] != "drill"  # a drill's signal inject is told by its inject
    if kind == "statement_reviewed":
        return bool(d.get("comment"))
    if kind == "override":
        return True
    known = {"incident_opened", "task_assigned", "task_waived", "task_cancelled", "task_regraded", "task_done",
             "escalation_fired", "escalation_acknowledged", "statement_drafted", "statement_released",
             "drill_action_rejected", "stage_changed", "severity_changed", "signals_updated", "task_applicable",
             "task_carried", "escalation_failed"}
    return kind not in known and bool(d.get("text"))  # injects and free notes (media call, family on site)


def signal_trend(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per signal: first and latest value, the peak, and whether it is rising, falling or flat."""
    out: list[dict[str, Any]] = []
    names: list[str] = []
    for h in history:
        names += [k for k in h["signals"] if k not in names]
    for k in names:
        values = [h["signals"][k] for h in history if h["signals"].get(k) is not None]
        if not values:
            continue
        last, prev = values[-1], values[-2] if len(values) > 1 else values[-1]
        direction = "up" if last > prev else "down" if last < prev else "flat"
        out.append({"signal": k, "first": values[0], "latest": last, "peak": max(values), "direction": direction,
                    "label": {"zh": label("signal", k, "zh-CN"), "en": label("signal", k, "en")}})
    return out


def trend_line(t: dict[str, Any], lang: str) -> str:
    words = {"zh": {"up": "上升", "down": "回落", "flat": "持平"}, "en": {"up": "rising", "down": "falling",
                                                                    "flat": "flat"}}[lang]
    if lang == "zh":
        return (f"{t['label']['zh']} {num(t['first'])} → {num(t['latest'])}（峰值 {num(t['peak'])}，"
                f"{words[t['direction']]}）")
    return f"{t['label']['en']} {num(t['first'])} → {num(t['latest'])} (peak {num(t['peak'])}, " \
           f"{words[t['direction']]})"


def severity_both(value: str | None) -> Pair:
    return {"zh": severity(value, "zh-CN"), "en": severity(value, "en")}
