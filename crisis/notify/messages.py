"""Notification text, in one place: per message kind, in zh-CN and en, as plain text and as chat Markdown.

The service queues a kind and its facts; this module turns them into words when the message is delivered,
in the recipient's language, with times in the hospital's zone (and the zone named), and with the link to
the task page or the one-tap acknowledgement link when a public base URL is configured (else the CLI hint).
User text (incident titles, names) is escaped in Markdown.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from crisis import acklink, escaping
from crisis.durations import format_duration
from crisis.errors import NotFound
from crisis.roster import GROUP_NAMES, Roster

ZH, EN = "zh-CN", "en"

# (subject, headline) per kind and language; facts fill the {fields}.
_HEAD: dict[str, dict[str, tuple[str, str]]] = {
    "escalation": {
        ZH: ("[舆情#{incident} {severity}级 升级{level}] 超时{overdue}: {task_zh}", "任务超时 {overdue}：{task_zh}"),
        EN: ("[Incident #{incident} grade {severity} L{level}] overdue {overdue}: {task_en}",
             "Overdue by {overdue}: {task_en}"),
    },
    "task_assigned": {
        ZH: ("[舆情#{incident} {severity}级] 新任务: {task_zh}", "新任务：{task_zh}"),
        EN: ("[Incident #{incident} grade {severity}] New task: {task_en}", "New task: {task_en}"),
    },
    "acknowledged": {
        ZH: ("[舆情#{incident}] 已确认: {task_zh}", "{by_name} 已确认升级：{task_zh}"),
        EN: ("[Incident #{incident}] Acknowledged: {task_en}", "{by_name} acknowledged: {task_en}"),
    },
    "engine_fault": {
        ZH: ("[舆情#{incident}] 引擎故障: 任务 #{task} 升级失败",
             "任务 #{task} 的升级链在第 {level} 级停止，请人工跟进：{task_zh}"),
        EN: ("[Incident #{incident}] Engine fault: task #{task} escalation failed",
             "The escalation chain of task #{task} stopped at level {level}; follow it up by hand: {task_en}"),
    },
    "delivery_failed": {
        ZH: ("[通知失败] {recipient_name} 未收到通知 ({channel})", "通知 #{message} 经 {channel} 多次投递失败"),
        EN: ("[Delivery failed] {recipient_name} was not reached ({channel})",
             "Message #{message} failed on {channel} after every attempt"),
    },
    "test": {
        ZH: ("[舆情系统] 测试消息", "这是一条测试消息，收到即说明 {channel} 渠道可用。"),
        EN: ("[crisis] Test message", "This is a test: if you can read it, the {channel} channel works."),
    },
}
_LABELS = {
    ZH: {"incident": "事件", "assignee": "负责人", "due": "截止", "paged": "此前已通知", "ack": "确认",
         "open": "查看", "done": "完成", "group": "组别", "error": "错误", "digest": "静默时段内的通知（{n} 条）",
         "digest_subject": "[舆情] 静默时段通知汇总（{n} 条）", "none": "无",
         "holds": "升级暂停至（届时仍未完成则继续）"},
    EN: {"incident": "Incident", "assignee": "Assignee", "due": "Due", "paged": "Paged before", "ack": "Acknowledge",
         "open": "Open", "done": "Done", "group": "Group", "error": "Error",
         "digest": "Held during quiet hours ({n})", "digest_subject": "[crisis] Quiet-hours digest ({n})",
         "none": "nobody", "holds": "Chain held until (resumes if still open)"},
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    markdown: str
    link: str | None = None


@dataclass(frozen=True)
class Item:
    """One queued message to render: what the dispatcher hands over."""

    kind: str
    recipient: str
    facts: dict[str, Any]
    created_at: datetime
    channel: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def _local_time(iso: str, tz: ZoneInfo) -> str:
    """Remembered: a drill renders the same deadline in every message about its task (~3,600 in 100 incidents)."""
    local = datetime.fromisoformat(iso).astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {tz.key} (UTC{local:%z})"


class Renderer:
    def __init__(self, roster: Roster, tz: ZoneInfo, *, base_url: str | None = None,
                 ack_secret: bytes | None = None) -> None:
        self.roster, self.tz = roster, tz
        self.base_url = base_url.rstrip("/") if base_url else None
        self.ack_secret = ack_secret

    def language(self, pid: str) -> str:
        try:
            return self.roster.person(pid).language
        except NotFound:
            return ZH

    def when(self, iso: str | None, lang: str) -> str:
        """A UTC instant as the hospital's local time, naming the zone."""
        if not iso:
            return "无截止" if lang == ZH else "no deadline"
        return _local_time(iso, self.tz)

    def render(self, item: Item, *, markdown: bool = True) -> Rendered:
        """Subject, plain text and (unless `markdown` is False: a channel that never shows it, such as the
        file and the log, so no escaping is paid for it) chat Markdown of one message."""
        lang = self.language(item.recipient)
        f = self._fields(item, lang)
        subject_t, head_t = _HEAD[item.kind][lang]
        lines = self._lines(item, lang, f)
        link = self._link(item)
        md = ""
        if markdown:  # only the fields the headline names are escaped (the facts carry many more)
            md = _md(head_t.format(**{k: escaping.md_inline(f[k]) for k in _names(head_t)}), lines, link)
        return Rendered(subject=subject_t.format(**f), text=_plain(head_t.format(**f), lines, link), markdown=md,
                        link=link)

    def digest(self, items: Sequence[Item], *, markdown: bool = True) -> Rendered:
        """One message for everything held during a person's quiet hours, oldest first."""
        lang = self.language(items[0].recipient)
        parts = [self.render(i, markdown=markdown) for i in sorted(items, key=lambda i: i.created_at)]
        lab = _LABELS[lang]
        head = lab["digest"].format(n=len(parts))
        text = head + "\n\n" + "\n\n".join(f"{n}. {p.text}" for n, p in enumerate(parts, 1))
        md = f"**{escaping.md_inline(head)}**\n\n" + "\n\n".join(p.markdown for p in parts) if markdown else ""
        return Rendered(subject=lab["digest_subject"].format(n=len(parts)), text=text, markdown=md)

    # ------------------------------------------------------------------ parts
    def _fields(self, item: Item, lang: str) -> dict[str, str]:
        f = {k: str(v) for k, v in item.facts.items() if not isinstance(v, list | dict)}
        f.setdefault("channel", item.channel)
        f["overdue"] = format_duration(item.facts.get("overdue_s") or 0)
        f["by_name"] = self.roster.name(item.facts.get("by"))
        f["recipient_name"] = self.roster.name(item.facts.get("recipient") or item.recipient)
        for k in ("incident", "severity", "task", "task_zh", "task_en", "level", "message"):
            f.setdefault(k, "?")
        return f

    def _lines(self, item: Item, lang: str, f: dict[str, str]) -> list[tuple[str, str]]:
        lab, facts = _LABELS[lang], item.facts
        out: list[tuple[str, str]] = []
        if "title" in facts:
            out.append((lab["incident"], f"#{facts.get('incident')} {facts['title']}"))
        if item.kind in ("escalation", "task_assigned"):
            if "group" in facts:
                zh, en = GROUP_NAMES.get(str(facts["group"]), (facts["group"], facts["group"]))
                out.append((lab["group"], zh if lang == ZH else en))
            out.append((lab["assignee"], self.roster.name(facts.get("assignee"))))
            out.append((lab["due"], self.when(facts.get("due_at"), lang)))
        if item.kind == "escalation":
            before = [self.roster.name(p) for p in facts.get("paged_before", [])]
            out.append((lab["paged"], "、".join(before) if lang == ZH and before else ", ".join(before) or lab["none"]))
        if item.kind == "acknowledged" and facts.get("holds_until"):
            out.append((lab["holds"], self.when(facts["holds_until"], lang)))
        if item.kind in ("delivery_failed", "engine_fault"):
            out.append((lab["error"], str(facts.get("error", ""))))
        hint = self._hint(item, lang)
        if hint:
            out.append(hint)
        return out

    def _link(self, item: Item) -> str | None:
        if not self.base_url:
            return None
        esc, task = item.facts.get("escalation"), item.facts.get("task")
        if item.kind == "escalation" and esc is not None and self.ack_secret:
            return f"{self.base_url}/ack/{acklink.sign(self.ack_secret, int(esc), item.recipient, item.created_at)}"
        if task is not None:
            return f"{self.base_url}/tasks/{task}"
        if item.facts.get("incident") is not None:
            return f"{self.base_url}/incidents/{item.facts['incident']}"
        return None

    def _hint(self, item: Item, lang: str) -> tuple[str, str] | None:
        """Without a web page to link to, the command that acts on the message."""
        if self.base_url:
            return None
        lab = _LABELS[lang]
        if item.kind == "escalation" and "escalation" in item.facts:
            return lab["ack"], f"crisis ack {item.facts['escalation']} --by {item.recipient}"
        if item.kind == "task_assigned" and "task" in item.facts:
            return lab["done"], f"crisis task done {item.facts['task']}"
        return None


@functools.cache
def _names(template: str) -> tuple[str, ...]:
    """The {fields} a template names (parsed once per template)."""
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(template) if name))


def _plain(head: str, lines: list[tuple[str, str]], link: str | None) -> str:
    body = [head, *(f"{k}: {v}" for k, v in lines)]
    if link:
        body.append(link)
    return "\n".join(body)


def _md(head: str, lines: list[tuple[str, str]], link: str | None) -> str:
    body = [f"**{head}**", *(f"- {escaping.md_inline(k)}: {escaping.md_inline(v)}" for k, v in lines)]
    if link:
        body.append(f"[{link}]({link})")
    return "\n".join(body)
