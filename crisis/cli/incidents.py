"""Incident commands: open, list, show, fire, signals, ack, escalations, tick, report."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crisis import narrative
from crisis.cli.common import (
    ByOpt,
    JsonOpt,
    _task_table,
    app,
    deliver,
    dump,
    emit,
    esc,
    iso,
    local,
    out,
    parse_kv,
    principal,
    reader,
    run,
    service,
    settings,
)
from crisis.console import table
from crisis.durations import format_duration
from crisis.engine.fsm import TRIGGERS
from crisis.errors import InputError

if TYPE_CHECKING:  # the service loads when a command runs, not for --help
    from crisis.service import CrisisService
    from crisis.views import Page

DEFAULT_PAGE = 50  # rows per page of `list` and `escalations` (the service's default too)


@app.command("open")
def open_cmd(
    title: Annotated[str, typer.Option(help="What is being said, in one line.")],
    category: Annotated[str, typer.Option(help="Playbook category, e.g. medical_dispute.")],
    source_url: Annotated[str | None, typer.Option(help="Where it was seen.")] = None,
    signal: Annotated[list[str] | None, typer.Option(help="Initial signal NAME=NUMBER (repeatable).")] = None,
    severity: Annotated[str | None, typer.Option(help="Initial grade I–IV (default: playbook's).")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open an incident: it starts in monitoring with the playbook's first tasks."""
    def body() -> None:
        from crisis import views

        svc = service()
        inc = svc.open_incident(title=title, category=category, source_url=source_url,
                                signals=parse_kv(signal or [], "--signal"), severity=severity, principal=principal(by))
        if as_json:
            emit({"incident": dump(inc), "tasks": [dump(t) for t in views.incident_tasks(svc, inc.id or 0)]})
        else:
            out.print(f"opened incident [bold]#{inc.id}[/] ({inc.severity}) in stage {inc.stage}")
            _task_table(svc, inc.id or 0)
    run(body, as_json)


LimitOpt = Annotated[int, typer.Option("--limit", min=0, help="Rows per page (0: everything).")]
PageOpt = Annotated[int, typer.Option("--page", min=1, help="Which page (1 = the first).")]


def _paging(limit: int, page: int) -> dict[str, int | None]:
    return {"limit": limit or None, "offset": (page - 1) * limit}


def _footer(pg: Page[object], page: int, order: str) -> None:
    """Say where this page sits in the whole list, so nothing seems to be missing."""
    if pg.total > len(pg.items) and pg.limit is not None:
        first = pg.offset + 1 if pg.items else 0
        more = f"; --page {page + 1} for more" if pg.next_offset is not None else ""
        out.print(f"{first}–{pg.offset + len(pg.items)} of {pg.total}, {order}{more}; --limit 0 for all",
                  highlight=False)


@app.command("list")
def list_cmd(
    all_: Annotated[bool, typer.Option("--all", help="Include closed and dismissed incidents.")] = False,
    final: Annotated[bool, typer.Option("--final", help="Only closed and dismissed incidents.")] = False,
    stage: Annotated[str | None, typer.Option("--stage", help="Only incidents in this stage.")] = None,
    category: Annotated[str | None, typer.Option("--category", help="Only incidents of this category.")] = None,
    limit: LimitOpt = DEFAULT_PAGE,
    page: PageOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Incidents with their stage, grade, next deadline and overdue tasks, newest first, one page at a time."""
    def body() -> None:
        from crisis import views  # loaded when run: `crisis --help` stays light

        svc = reader()
        which = True if final else (None if all_ else False)
        pg = views.incident_list(svc, stage=stage, category=category, final=which, **_paging(limit, page))
        if as_json:
            emit([{**dump(r.incident), "next_deadline": iso(r.next_deadline), "overdue": r.overdue,
                   "unacked": r.unacked} for r in pg.items])
            return
        t = table("#", "title", "category", "grade", "stage", "next deadline", "late", "opened",
                  wrap=("title", "next deadline"))
        now = svc.clock.now()
        for r in pg.items:
            i, due = r.incident, r.next_deadline
            due_s = "-" if due is None else f"{local(due)} ({'overdue ' if due < now else 'in '}" \
                                            f"{format_duration(abs(due - now))})"
            late = f"{r.overdue} overdue" + (f", {r.unacked} unacked" if r.unacked else "") if r.overdue else ""
            t.add_row(str(i.id), i.title, i.category, i.severity, i.stage, due_s, late, local(i.opened_at))
        out.print(t)
        _footer(pg, page, "newest first")
    run(body, as_json)


@app.command("show")
def show_cmd(incident_id: int, as_json: JsonOpt = False) -> None:
    """One incident: tasks per group with due times, escalations and the timeline."""
    def body() -> None:
        from crisis import views  # loaded when run: `crisis --help` stays light

        svc = reader()
        view = views.incident_detail(svc, incident_id)  # one snapshot
        inc, escs, events = view.incident, view.escalations, view.timeline
        tasks = view.all_tasks
        if as_json:
            overdue = {tv.task.id for tvs in view.tasks.values() for tv in tvs if tv.overdue}
            emit({"incident": dump(inc), "version": view.version, "allowed_triggers": view.allowed_triggers,
                  "tasks": [{**dump(t), "overdue": t.id in overdue} for t in tasks],
                  "escalations": [dump(e) for e in escs], "statements": [dump(s) for s in view.statements],
                  "timeline": [dump(e) for e in events], "at": view.at})
            return
        zh, en = view.stage_names
        out.print(f"[bold]#{inc.id} {esc(inc.title)}[/]\n{inc.category} · grade {inc.severity} · stage {inc.stage} "
                  f"({zh} / {en}) · cycle {inc.cycle}\nsource: {esc(inc.source_url or '-')} · signals: "
                  f"{esc(inc.signals or '-')}\nnext triggers: {', '.join(view.allowed_triggers) or 'none'}")
        _task_table(svc, incident_id, tasks)
        if escs:
            titles = {t.id: t.title_zh for t in tasks}
            et = table("esc", "task", "level", "recipient", "fired", "late", "acked", wrap=("task", "acked"))
            for e in escs:
                et.add_row(str(e.id), f"#{e.task_id} {titles.get(e.task_id, '')}", str(e.level),
                           svc.roster.name(e.recipient), local(e.fired_at), format_duration(e.late_seconds),
                           f"{svc.roster.name(e.acked_by)} {local(e.acked_at)}" if e.acked_at else "-")
            out.print(et)
        look = narrative.Lookup.of({p.id: p.name for p in svc.roster.people}, [
            {"id": t.id, "key": t.key, "title": t.title_zh, "title_en": t.title_en} for t in tasks])
        tl = table("when", "who", "what", "from → to", "detail", wrap=("what", "from → to", "detail"))
        for ev in events:
            row = {"kind": ev.kind, "data": ev.data, "task_id": ev.task_id, "actor": ev.actor,
                   "from_state": ev.from_state, "to_state": ev.to_state}
            detail = "" if ev.kind == "stage_changed" and not (ev.data.get("decision") or ev.data.get("note")) \
                else narrative.describe(row, look)["zh"]
            tl.add_row(local(ev.at), look.person(ev.actor, "zh"), ev.kind,
                       f"{ev.from_state or ''} → {ev.to_state or ''}" if ev.to_state else "", detail)
        out.print(tl)
    run(body, as_json)


@app.command("fire")
def fire_cmd(
    incident_id: int,
    trigger: Annotated[str, typer.Argument(help=f"One of: {', '.join(TRIGGERS)} (skip = skip_onsite).")],
    severity: Annotated[str | None, typer.Option(help="Grade I–IV (with assess).")] = None,
    decision: Annotated[str | None, typer.Option(help="activate, watch or dismiss (with assess).")] = None,
    override: Annotated[bool, typer.Option(help="Leadership: leave the stage with required tasks open.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --override).")] = None,
    note: Annotated[str | None, typer.Option(help="A note for the timeline.")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fire a stage trigger (report, assess, respond, media, onsite, skip, follow_up, close, reopen)."""
    trig = {"skip": "skip_onsite", "follow-up": "follow_up", "followup": "follow_up"}.get(trigger, trigger)

    def body() -> None:
        from crisis import views

        svc = service()
        before = views.incident_row(svc, incident_id).stage
        inc = svc.fire(incident_id, trig, principal=principal(by), decision=decision, severity=severity,
                       override=override, reason=reason, note=note)
        moved = _stage_exit_summary(svc, incident_id)
        if as_json:
            emit({"incident": dump(inc), "from": before, "to": inc.stage,
                  "allowed_triggers": views.allowed_triggers(inc.stage), **moved})
        else:
            out.print(f"#{inc.id}: {before} → [bold]{inc.stage}[/] (grade {inc.severity})")
            for what, label in (("waived", "waived by override"), ("carried", "carried over (still open)"),
                                ("lapsed", "lapsed (optional, not done)")):
                for t in moved[what]:
                    out.print(f"  {label}: #{t['id']} {t['title']}", highlight=False)
            _task_table(svc, incident_id)
    run(body, as_json)


def _stage_exit_summary(svc: CrisisService, incident_id: int) -> dict[str, list[dict[str, object]]]:
    """What the last stage change did to open work (from its timeline entry), with task titles."""
    from crisis import views

    ev = next((e for e in reversed(views.timeline(svc, incident_id)) if e.kind == "stage_changed"), None)
    cycle = ev.data.get("cycle") if ev else None
    tasks = {(t.cycle, t.key): t for t in views.incident_tasks(svc, incident_id)}
    out: dict[str, list[dict[str, object]]] = {}
    for what in ("waived", "carried", "lapsed"):
        keys = ev.data.get(what, []) if ev else []
        out[what] = [{"id": t.id, "key": t.key, "title": t.title_zh}
                     for k in keys if (t := tasks.get((cycle, k))) is not None]
    return out


@app.command("signals")
def signals_cmd(incident_id: int, values: list[str], note: str | None = None, by: ByOpt = None,
                as_json: JsonOpt = False) -> None:
    """Record new signal values (NAME=NUMBER ...), e.g. reposts=1500 views=240000."""
    def body() -> None:
        inc = service().update_signals(incident_id, parse_kv(values, "values"), principal=principal(by), note=note)
        if as_json:
            emit(dump(inc))
        else:
            out.print(f"#{inc.id} signals: {esc(inc.signals)}")
    run(body, as_json)


@app.command("ack")
def ack_cmd(
    escalation_id: Annotated[int | None, typer.Argument(help="Escalation id from the notification.")] = None,
    task: Annotated[int | None, typer.Option(help="Acknowledge by task id instead.")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge an escalation: holds the task's chain for the acknowledgement timeout; if the task is still
    open then, the chain resumes at the next level."""
    def body() -> None:
        esc = service().acknowledge(escalation_id=escalation_id, task_id=task, principal=principal(by))
        if as_json:
            emit(dump(esc))
        else:
            out.print(f"acknowledged escalation #{esc.id} (task #{esc.task_id}, level {esc.level})")
    run(body, as_json)


@app.command("escalations")
def escalations_cmd(
    pending: Annotated[bool, typer.Option(help="Only those of open tasks (acknowledged ones too).")] = False,
    incident: Annotated[int | None, typer.Option(help="Only this incident.")] = None,
    limit: LimitOpt = DEFAULT_PAGE,
    page: PageOpt = 1,
    as_json: JsonOpt = False,
) -> None:
    """Escalations fired (what an on-call administrator should look at): with --pending the most overdue
    first, otherwise the newest first; one page at a time."""
    def body() -> None:
        from crisis import views  # loaded when run: `crisis --help` stays light

        svc = reader()
        pg = views.escalation_page(svc, incident, pending=pending, **_paging(limit, page))
        if as_json:
            emit([dump(e) for e in pg.items])
            return
        tasks = views.tasks_by_id(svc, [e.task_id for e in pg.items])  # the page's tasks, one query
        last_fired: dict[int, datetime] = {}  # a hold is live when no step fired after the acknowledgement
        for e in pg.items:
            last_fired[e.task_id] = max(e.fired_at, last_fired.get(e.task_id, e.fired_at))
        t = table("esc", "incident", "task", "level", "recipient", "fired", "acked", "chain",
                  wrap=("task", "acked", "chain"))
        for e in pg.items:
            task = tasks.get(e.task_id)
            chain = "-"
            if task is not None and task.status == "open":
                held = task.acked_at is not None and task.acked_at >= last_fired[e.task_id]
                chain = (f"held until {local(task.next_escalation_at)}" if held
                         else f"next {local(task.next_escalation_at)}" if task.next_escalation_at else "ended")
            t.add_row(str(e.id), str(e.incident_id), f"#{e.task_id} {task.title_zh if task else ''}", str(e.level),
                      svc.roster.name(e.recipient), local(e.fired_at),
                      f"{svc.roster.name(e.acked_by)} {local(e.acked_at)}" if e.acked_at else "-", chain)
        out.print(t)
        _footer(pg, page, "most overdue first" if pending else "newest first")
    run(body, as_json)


@app.command("tick")
def tick_cmd(as_json: JsonOpt = False) -> None:
    """Fire what is due now and deliver notifications once (for cron; the scheduler does this itself)."""
    def body() -> None:
        svc = service()
        fired = svc.tick()
        deliver()
        if as_json:
            emit({"fired": [dump(e) for e in fired], "next_due": iso(svc.next_due())})
        else:
            out.print(f"fired {len(fired)} escalation step(s); next due {local(svc.next_due())}")
    run(body, as_json)


@app.command("report")
def report_cmd(
    incident_id: int,
    kind: Annotated[str, typer.Option(help="incident_report, after_action or scorecard.")] = "incident_report",
    lang: Annotated[str, typer.Option(help="zh-CN or en.")] = "zh-CN",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write all reports to this folder.")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone for times in reports (default CRISIS_TZ).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, or pdf (with --out: PDFs as well as Markdown).")] = "md",
    as_json: JsonOpt = False,
) -> None:
    """Render the incident report (舆情专报), the after-action review or the scorecard as Markdown (or PDF).

    With --json: the data every report is rendered from (facts, tasks, escalations, metrics, findings)."""
    def body() -> None:
        from crisis import reports

        zone_name = tz or settings().tz
        if kind not in reports.KINDS:  # check before touching the database
            raise InputError(f"unknown report {kind!r} (use {', '.join(reports.KINDS)})", field="--kind")
        if lang not in reports.LANGS:
            raise InputError(f"unknown language {lang!r} (use {', '.join(reports.LANGS)})", field="--lang")
        if fmt not in reports.FORMATS:
            raise InputError(f"unknown format {fmt!r} (use {', '.join(reports.FORMATS)})", field="--format")
        if fmt == "pdf" and out_dir is None:
            raise InputError("a PDF is written to a folder: add --out DIR", field="--out")
        svc = service()
        if out_dir is not None:
            written = reports.write_reports(svc, incident_id, out_dir, tz=zone_name,
                                            formats=("md", "pdf") if fmt == "pdf" else ("md",))
            if as_json:
                emit({"written": [str(p) for p in written]})
            for p in [] if as_json else written:
                out.print(str(p), soft_wrap=True, highlight=False)
            return
        ctx = reports.report_context(svc, incident_id, tz=zone_name)
        if as_json:
            emit(reports.document(ctx))
        else:
            sys.stdout.write(reports.render(kind, ctx, lang))
    run(body, as_json)
