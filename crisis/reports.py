"""Rendered reports: the incident report (舆情专报), the after-action review and the drill scorecard.

Templates live under `templates/<lang>/<kind>.md.j2` so a hospital can re-word them without code.
The context is the scorecard (one source of figures for CLI, JSON and reports) plus findings
computed here, so templates only lay things out and never decide anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from types import FunctionType
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.runtime import Context

from crisis import findings as findings_
from crisis import labels, narrative, scorecard
from crisis.config import zone
from crisis.durations import format_duration
from crisis.errors import InputError
from crisis.escaping import escape_text, md_inline
from crisis.jsonout import document_text
from crisis.playbook import PlaybookSet
from crisis.resources import data_path
from crisis.roster import Roster
from crisis.service import CrisisService

KINDS = ("incident_report", "after_action", "scorecard")
LANGS = labels.LANGS
FORMATS = ("md", "pdf")
TEMPLATES = data_path("templates")  # shipped in the package (crisis.resources)

# Event kinds that are noise in a report's narrative (they are in the tables instead).
_QUIET = {"task_assigned", "task_cancelled", "task_regraded"}


_DICT_ATTRS = frozenset(dir(dict))


class _Context(Context):
    """Jinja's `Context.call` runs for every function a template calls (~980 per incident's six reports) and first
    looks for `pass_context`-style markers on the function and on its `__call__`; a plain function (what
    `_helpers` gives, unmarked) is called straight, as Jinja would end up calling it."""

    def call(self, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if type(obj) is not FunctionType or hasattr(obj, "jinja_pass_arg"):
            return super().call(obj, *args, **kwargs)
        if kwargs:
            kwargs.pop("_block_vars", None)
            kwargs.pop("_loop_vars", None)
        try:
            return obj(*args, **kwargs)
        except StopIteration:  # as Jinja's
            return self.environment.undefined("value was undefined because a callable raised a StopIteration "
                                              "exception")


class _Environment(Environment):
    """Jinja reads `x.key` as attribute `key`, else item `key`; on a plain dict the attribute only exists under a
    dict method's name, so the item is looked up first there: the same answer without raising and catching an
    AttributeError for each of the ~400 fields a report prints."""

    context_class = _Context

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRS:
            try:
                return obj[attribute]
            except KeyError:
                pass  # undefined: Jinja's own lookup says so
        return super().getattr(obj, attribute)


@functools.lru_cache(maxsize=8)
def environment(templates: Path = TEMPLATES) -> Environment:
    """Markdown output: every printed value is Markdown-escaped by `finalize` (user text is data, and a
    hospital's re-worded template cannot forget a filter), a strict undefined so a typo fails loudly.
    One per templates folder, kept: compiling a template costs ~70 ms and a drill renders six reports per
    incident (Jinja still checks each file's mtime, so an edited template is picked up)."""
    env = _Environment(loader=FileSystemLoader(str(templates)), undefined=StrictUndefined, autoescape=False,
                      finalize=_finalize, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["cell"] = cell
    env.filters["dur"] = format_duration
    env.filters["num"] = num
    return env


def _finalize(value: object) -> object:
    """Every `{{ … }}` goes through here: numbers print as themselves, anything else as inert one-line
    Markdown (`Md` values, e.g. from `cell`, are already escaped and pass unchanged). A plain str, most of the
    ~1,700 values an incident's reports print, goes straight to the escaping it would reach anyway."""
    if type(value) is str:
        return escape_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return md_inline(value)


def cell(value: object) -> str:
    """A table cell: '-' when empty (escaping, pipes included, is `finalize`'s job)."""
    if value is None or value == "":
        return "-"
    return md_inline(value)


def num(value: object) -> str:
    """Counts read from YAML or JSON may arrive as floats; show 1500, not 1500.0."""
    return narrative.num(value)


@functools.lru_cache(maxsize=4096)
def _local_time(iso: str, fmt: str, tz: tzinfo) -> str:
    """Remembered: the six reports of an incident print the same instants (~380 `when` calls per incident)."""
    return datetime.fromisoformat(iso).astimezone(tz).strftime(fmt)


def _helpers(lang: str, tz_name: str, look: narrative.Lookup) -> dict[str, Callable[..., str]]:
    """Functions templates call to show a value; every word comes from crisis.labels."""
    tz = zone(tz_name)
    short = "zh" if lang == "zh-CN" else "en"

    def when(iso: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return _local_time(iso, fmt, tz) if iso else "-"

    def text(pair: dict[str, str] | str | None) -> str:
        return labels.pick(pair, lang)

    return {"when": when, "text": text,
            "stage": lambda key: labels.label("stage", key, lang),
            "group": lambda key: labels.label("group", key, lang),
            "decision": lambda key: labels.label("decision", key, lang),
            "signal": lambda key: labels.label("signal", key, lang),
            "outcome": lambda key: labels.label("outcome", key, lang),
            "clock": lambda key: labels.label("clock", key, lang),
            "expectation": lambda key: labels.label("expectation", key, lang),
            "kind": lambda key: labels.label("event", key, lang),
            "sev": lambda value: labels.severity(value, lang),
            "person": lambda pid: look.person(pid, short),
            "trend": lambda t: narrative.trend_line(t, short)}


def report_context(svc: CrisisService, incident_id: int, *, tz: str = "Asia/Shanghai",
                   scenario: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
                   expectations: list[scorecard.Expectation] | None = None, finished: bool = True,
                   now: datetime | None = None, card: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a template may show, as plain data (also what `--json` and scorecard.json carry). `card`: the
    incident's scorecard if the caller has just built it with the same expectations (a drill, at its end)."""
    zone(tz)  # fail early on a bad zone, before anything is written
    if card is None:
        card = scorecard.build(svc, incident_id, expectations=expectations, finished=finished)
    return context_of(card, svc.roster, svc.playbooks, at=now or svc.clock.now(),  # drill time in a drill
                      tz=tz, scenario=scenario, run=run)


def context_of(card: dict[str, Any], roster: Roster, playbooks: PlaybookSet, *, at: datetime, tz: str,
               scenario: dict[str, Any] | None = None, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """`report_context` from an incident's scorecard, its roster and playbooks, at `at` (pure: a drill's report
    worker builds it away from the service)."""
    zone(tz)
    inc = card["incident"]
    names = {p.id: p.name for p in roster.people}
    group_of = {pid: g for g, grp in roster.groups.items() for pid in grp.everyone}
    events = card["timeline"]
    playbook = playbooks.get(inc["category"]) if inc["category"] in playbooks.categories else None
    signal_history = [{"at": e["at"], "offset_seconds": e["offset_seconds"],
                       "signals": e["data"].get("after" if e["kind"] == "signals_updated" else "signals") or {}}
                      for e in events if e["kind"] in ("incident_opened", "signals_updated")]
    tasks = [{**t, "overdue": t["status"] == "open" and t["due_at"] is not None
              and datetime.fromisoformat(t["due_at"]) < at} for t in card["tasks"]]
    look = narrative.Lookup.of(names, tasks)
    timeline = [{**e, "who": {"zh": look.person(e["actor"], "zh"), "en": look.person(e["actor"], "en")},
                 "what": narrative.describe(e, look)} for e in events]
    card = {**card, "tasks": tasks, "timeline": timeline}
    found = findings_.findings(card, look, group_of)
    open_tasks = sorted((t for t in tasks if t["status"] == "open"), key=lambda t: t["due_at"] or "~")
    released = [s for s in card["statements"] if s["status"] == "released"]
    return {
        "organisation": roster.organisation,
        "issued_at": at.isoformat(),
        "tz": tz,
        "scenario": scenario,
        "run": run,
        "incident": inc,
        "category_name": {"zh": playbook.name.zh, "en": playbook.name.en} if playbook else
        {"zh": inc["category"], "en": inc["category"]},
        "tasks": tasks,
        "tasks_by_group": {g: [t for t in tasks if t["group"] == g] for g in labels.GROUPS},
        "group_summary": findings_.group_summary(tasks),
        "open_tasks": open_tasks,
        "escalations": card["escalations"],
        "chains": card["chains"],
        "statements": card["statements"],
        "released": released,
        "next_update": released[-1]["next_update"] if released else None,
        "expectations": card["expectations"],
        "metrics": card["metrics"],
        "timeline": timeline,
        "narrative": [e for e in timeline if e["kind"] not in _QUIET],
        "stage_history": [e for e in timeline if e["kind"] in ("stage_changed", "severity_changed")],
        "facts": [e for e in timeline if narrative.is_fact(e)],
        "signal_history": signal_history,
        "signal_trend": narrative.signal_trend(signal_history),
        "clocks": findings_.clock_checks(card),
        "findings": found,
        "improvement_plan": findings_.improvement_plan(found, at),
        "names": names,
    }


# The keys of `crisis report --json`, of scorecard.json and of `crisis drill run --json`: one document.
DOCUMENT_KEYS = ("organisation", "issued_at", "tz", "scenario", "run", "incident", "tasks", "open_tasks",
                 "escalations", "chains", "statements", "expectations", "metrics", "clocks", "findings",
                 "improvement_plan", "signal_history", "signal_trend", "timeline")


def document(ctx: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable report: the same keys wherever it is written."""
    return {k: ctx[k] for k in DOCUMENT_KEYS}


def preload(templates: Path = TEMPLATES) -> None:
    """Compile every report template now (a process about to render many reports: the drill's report workers)."""
    env = environment(templates)
    for kind in KINDS:
        for lang in LANGS:
            env.get_template(f"{lang}/{kind}.md.j2")


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
    look = narrative.Lookup.of(ctx["names"], ctx["tasks"])
    return template.render(**ctx, lang=lang, **_helpers(lang, ctx["tz"], look))


def write_reports(svc: CrisisService, incident_id: int, out_dir: Path, *, tz: str = "Asia/Shanghai",
                  scenario: dict[str, Any] | None = None, run: dict[str, Any] | None = None,
                  expectations: list[scorecard.Expectation] | None = None,
                  kinds: tuple[str, ...] | None = None, formats: tuple[str, ...] = ("md",)) -> list[Path]:
    """Render every report in every language (all rendered before any is written) plus scorecard.json."""
    ctx = report_context(svc, incident_id, tz=tz, scenario=scenario, run=run, expectations=expectations)
    return write_context(ctx, out_dir, kinds=kinds, formats=formats)


def write_context(ctx: dict[str, Any], out_dir: Path, *, kinds: tuple[str, ...] | None = None,
                  formats: tuple[str, ...] = ("md",)) -> list[Path]:
    """Markdown always (the PDF is laid out from it); PDF too when asked. Nothing is written until all
    are rendered, so a failure leaves no half set behind."""
    for f in formats:
        if f not in FORMATS:
            raise InputError(f"unknown format {f!r} (use {', '.join(FORMATS)})", field="format")
    if kinds is None:
        kinds = KINDS if ctx["scenario"] is not None else ("incident_report", "after_action")
    markdown = {(kind, lang): render(kind, ctx, lang) for kind in kinds for lang in LANGS}
    files: dict[str, str | bytes] = {f"{kind}.{lang}.md": text for (kind, lang), text in markdown.items()}
    if "pdf" in formats:
        from crisis.report_pdf import render_pdf

        files |= {f"{kind}.{lang}.pdf": render_pdf(text, kind=kind, ctx=ctx, lang=lang)
                  for (kind, lang), text in markdown.items()}
    files["scorecard.json"] = document_text(document(ctx)) + "\n"  # as `report --json` prints it
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        path = out_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
