"""`crisis` command line for the duty officer, on-call administrators and drill facilitators.

A thin adapter: parse arguments, call the service, print with rich (or JSON with --json).
Every user error exits with status 2 and a one-line message; nothing is changed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crisis import logs
from crisis.clock import SystemClock
from crisis.config import Settings, build_channels, build_service, zone
from crisis.durations import format_duration
from crisis.engine.fsm import MACHINE, STAGE_NAMES, TRIGGERS
from crisis.errors import CrisisError, InputError
from crisis.notify.dispatch import dispatch
from crisis.roster import GROUP_NAMES
from crisis.service import CrisisService

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Public-opinion crisis response: incidents, tasks, escalations, drills.")
task_app = typer.Typer(no_args_is_help=True, help="Tasks assigned by the playbook.")
drill_app = typer.Typer(no_args_is_help=True, help="Tabletop drills in virtual time.")
statement_app = typer.Typer(no_args_is_help=True, help="Public statements and their three-level review.")
playbook_app = typer.Typer(no_args_is_help=True, help="Playbooks: validate and inspect.")
scheduler_app = typer.Typer(no_args_is_help=True, help="The process that fires deadlines and escalations.")
app.add_typer(task_app, name="task")
app.add_typer(drill_app, name="drill")
app.add_typer(statement_app, name="statement")
app.add_typer(playbook_app, name="playbook")
app.add_typer(scheduler_app, name="scheduler")

out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {}

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who acts (person id from the roster); "
                                                        "default $CRISIS_USER or the roster's duty officer.")]


@app.callback()
def _main(
    db: Annotated[str | None, typer.Option(help="Database URL (default $CRISIS_DB_URL or store/crisis.db).")] = None,
    roster: Annotated[Path | None, typer.Option(help="Roster YAML (default examples/roster.yaml).")] = None,
    playbooks: Annotated[Path | None, typer.Option(help="Playbook folder (default playbooks/).")] = None,
) -> None:
    settings = Settings.from_env().with_overrides(db_url=db, roster_path=roster, playbooks_dir=playbooks)
    _state["settings"] = settings


def settings() -> Settings:
    return _state.get("settings") or Settings.from_env()


def service() -> CrisisService:
    if "service" not in _state:
        s = settings()
        logs.configure(s.log_path)
        _state["service"] = build_service(s, SystemClock())
    svc: CrisisService = _state["service"]
    return svc


def actor(by: str | None) -> str:
    who = by or os.environ.get("CRISIS_USER") or service().roster.roles.get("duty_officer")
    if not who:
        raise InputError("say who acts with --by (or set CRISIS_USER)", field="--by")
    return who


def deliver() -> None:
    """Deliver notifications this command queued (channels are idempotent, the scheduler may too)."""
    svc = service()
    dispatch(svc.engine, build_channels(settings()), svc.clock.now())


def run(fn: Callable[[], Any], as_json: bool) -> None:
    """Run a command body, turning user errors into exit status 2 with one clear line."""
    try:
        fn()
    except CrisisError as exc:
        if as_json:
            print(json.dumps({"error": str(exc), "type": type(exc).__name__}, ensure_ascii=False))
        else:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def emit(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def dump(row: Any) -> dict[str, Any]:
    return row.model_dump(mode="json")


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 as pydantic writes it in the rows (…Z), so JSON output is uniform."""
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def local(dt: datetime | None) -> str:
    """Times on screen are in the hospital's zone (CRISIS_TZ), not the server's."""
    return dt.astimezone(zone(settings().tz)).strftime("%m-%d %H:%M") if dt else "-"


def parse_kv(pairs: list[str], what: str) -> dict[str, float]:
    outd: dict[str, float] = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name:
            raise InputError(f"expected NAME=NUMBER, got {p!r}", field=what)
        try:
            outd[name] = float(value) if "." in value else int(value)
        except ValueError:
            raise InputError(f"{name}: {value!r} is not a number", field=what) from None
    return outd


# --------------------------------------------------------------------------- incidents
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
        svc = service()
        inc = svc.open_incident(title=title, category=category, source_url=source_url,
                                signals=parse_kv(signal or [], "--signal"), severity=severity, actor=actor(by))
        deliver()
        if as_json:
            emit({"incident": dump(inc), "tasks": [dump(t) for t in svc.tasks(inc.id or 0)]})
        else:
            out.print(f"opened incident [bold]#{inc.id}[/] ({inc.severity}) in stage {inc.stage}")
            _task_table(svc, inc.id or 0)
    run(body, as_json)


@app.command("list")
def list_cmd(
    all_: Annotated[bool, typer.Option("--all", help="Include closed and dismissed incidents.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Incidents with their stage, grade and next deadline."""
    def body() -> None:
        svc = service()
        incs = svc.incidents(include_final=all_)
        nxt = svc.next_deadlines()
        if as_json:
            emit([{**dump(i), "next_deadline": iso(nxt.get(i.id or 0))} for i in incs])
            return
        t = Table("#", "title", "category", "grade", "stage", "next deadline", "opened")
        now = svc.clock.now()
        for i in incs:
            due = nxt.get(i.id or 0)
            due_s = "-" if due is None else f"{local(due)} ({'overdue ' if due < now else 'in '}" \
                                            f"{format_duration(abs(due - now))})"
            t.add_row(str(i.id), i.title, i.category, i.severity, i.stage, due_s, local(i.opened_at))
        out.print(t)
    run(body, as_json)


def _task_table(svc: CrisisService, incident_id: int) -> None:
    t = Table("task", "stage", "group", "title", "assignee", "due", "status", "esc")
    now = svc.clock.now()
    for task in svc.tasks(incident_id):
        if task.status in ("cancelled",):
            continue
        due = local(task.due_at)
        if task.status == "open" and task.due_at and task.due_at < now:
            due = f"[red]{due} overdue[/]"
        t.add_row(str(task.id), task.stage, GROUP_NAMES[task.group][0], task.title_zh,
                  svc.roster.name(task.assignee), due, task.status,
                  str(task.escalation_level) + (" ack" if task.acked_at else ""))
    out.print(t)


@app.command("show")
def show_cmd(incident_id: int, as_json: JsonOpt = False) -> None:
    """One incident: tasks per group with due times, escalations and the timeline."""
    def body() -> None:
        svc = service()
        inc = svc.incident(incident_id)
        tasks, escs, events = svc.tasks(incident_id), svc.escalations(incident_id), svc.timeline(incident_id)
        if as_json:
            emit({"incident": dump(inc), "allowed_triggers": MACHINE.allowed(inc.stage),
                  "tasks": [dump(t) for t in tasks], "escalations": [dump(e) for e in escs],
                  "statements": [dump(s) for s in svc.statements(incident_id)],
                  "timeline": [dump(e) for e in events]})
            return
        zh, en = STAGE_NAMES[inc.stage]
        out.print(f"[bold]#{inc.id} {inc.title}[/]\n{inc.category} · grade {inc.severity} · stage {inc.stage} "
                  f"({zh} / {en}) · cycle {inc.cycle}\nsource: {inc.source_url or '-'} · signals: "
                  f"{inc.signals or '-'}\nnext triggers: {', '.join(MACHINE.allowed(inc.stage)) or 'none'}")
        _task_table(svc, incident_id)
        if escs:
            et = Table("esc", "task", "level", "recipient", "fired", "late", "acked")
            for e in escs:
                et.add_row(str(e.id), str(e.task_id), str(e.level), svc.roster.name(e.recipient), local(e.fired_at),
                           format_duration(e.late_seconds), f"{svc.roster.name(e.acked_by)} {local(e.acked_at)}"
                           if e.acked_at else "-")
            out.print(et)
        tl = Table("when", "who", "what", "from → to", "detail")
        for ev in events:
            detail = ev.data.get("key") or ev.data.get("text") or ev.data.get("reason") or ""
            tl.add_row(local(ev.at), svc.roster.name(ev.actor), ev.kind,
                       f"{ev.from_state or ''} → {ev.to_state or ''}" if ev.to_state else "", str(detail))
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
        svc = service()
        before = svc.incident(incident_id).stage
        inc = svc.fire(incident_id, trig, actor=actor(by), decision=decision, severity=severity,
                       override=override, reason=reason, note=note)
        deliver()
        if as_json:
            emit({"incident": dump(inc), "from": before, "to": inc.stage,
                  "allowed_triggers": MACHINE.allowed(inc.stage)})
        else:
            out.print(f"#{inc.id}: {before} → [bold]{inc.stage}[/] (grade {inc.severity})")
            _task_table(svc, incident_id)
    run(body, as_json)


@app.command("signals")
def signals_cmd(incident_id: int, values: list[str], note: str | None = None, by: ByOpt = None,
                as_json: JsonOpt = False) -> None:
    """Record new signal values (NAME=NUMBER ...), e.g. reposts=1500 views=240000."""
    def body() -> None:
        inc = service().update_signals(incident_id, parse_kv(values, "values"), actor=actor(by), note=note)
        if as_json:
            emit(dump(inc))
        else:
            out.print(f"#{inc.id} signals: {inc.signals}")
    run(body, as_json)


@app.command("ack")
def ack_cmd(
    escalation_id: Annotated[int | None, typer.Argument(help="Escalation id from the notification.")] = None,
    task: Annotated[int | None, typer.Option(help="Acknowledge by task id instead.")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge an escalation: stops the chain for that task (the task itself stays open)."""
    def body() -> None:
        esc = service().acknowledge(escalation_id=escalation_id, task_id=task, actor=actor(by))
        deliver()
        if as_json:
            emit(dump(esc))
        else:
            out.print(f"acknowledged escalation #{esc.id} (task #{esc.task_id}, level {esc.level})")
    run(body, as_json)


@app.command("escalations")
def escalations_cmd(
    pending: Annotated[bool, typer.Option(help="Only unacknowledged chains of open tasks.")] = False,
    incident: Annotated[int | None, typer.Option(help="Only this incident.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Escalations fired (what an on-call administrator should look at)."""
    def body() -> None:
        svc = service()
        rows = svc.escalations(incident, unacked_only=pending)
        if as_json:
            emit([dump(e) for e in rows])
            return
        t = Table("esc", "incident", "task", "level", "recipient", "fired", "acked")
        for e in rows:
            t.add_row(str(e.id), str(e.incident_id), str(e.task_id), str(e.level), svc.roster.name(e.recipient),
                      local(e.fired_at), svc.roster.name(e.acked_by) if e.acked_at else "-")
        out.print(t)
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
    as_json: JsonOpt = False,
) -> None:
    """Render the incident report (舆情专报), the after-action review or the scorecard as Markdown.

    With --json: the data every report is rendered from (facts, tasks, escalations, metrics, findings)."""
    def body() -> None:
        from crisis import reports

        zone_name = tz or settings().tz
        if kind not in reports.KINDS:  # check before touching the database
            raise InputError(f"unknown report {kind!r} (use {', '.join(reports.KINDS)})", field="--kind")
        if lang not in reports.LANGS:
            raise InputError(f"unknown language {lang!r} (use {', '.join(reports.LANGS)})", field="--lang")
        svc = service()
        if out_dir is not None:
            written = reports.write_reports(svc, incident_id, out_dir, tz=zone_name)
            if as_json:
                emit({"written": [str(p) for p in written]})
            for p in [] if as_json else written:
                out.print(str(p), soft_wrap=True, highlight=False)
            return
        ctx = reports.report_context(svc, incident_id, tz=zone_name)
        if as_json:
            emit({k: v for k, v in ctx.items() if k != "names"})
        else:
            sys.stdout.write(reports.render(kind, ctx, lang))
    run(body, as_json)


# --------------------------------------------------------------------------- tasks
@task_app.command("done")
def task_done(task_id: int, note: str | None = None, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Mark a task done; its pending escalations stop."""
    def body() -> None:
        t = service().complete_task(task_id, actor=actor(by), note=note)
        deliver()
        if as_json:
            emit(dump(t))
        else:
            late = (t.done_at - t.due_at).total_seconds() if t.due_at and t.done_at else 0
            out.print(f"task #{t.id} {t.key} done" + (f", {format_duration(late)} late" if late > 0 else ""))
    run(body, as_json)


@task_app.command("list")
def task_list(incident_id: int, as_json: JsonOpt = False) -> None:
    """Tasks of an incident."""
    def body() -> None:
        svc = service()
        if as_json:
            emit([dump(t) for t in svc.tasks(incident_id)])
        else:
            _task_table(svc, incident_id)
    run(body, as_json)


# --------------------------------------------------------------------------- statements
@statement_app.command("draft")
def statement_draft(incident_id: int, title: Annotated[str, typer.Option()], body_text: Annotated[
        str, typer.Option("--body")], next_update: str | None = None, major: bool | None = None,
        by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Draft a statement; it enters review (three levels when major)."""
    def body() -> None:
        st = service().draft_statement(incident_id, title=title, body=body_text, actor=actor(by), major=major,
                                       next_update=next_update)
        emit(dump(st)) if as_json else out.print(f"statement #{st.id} in review ({'major' if st.major else 'minor'})")
    run(body, as_json)


@statement_app.command("review")
def statement_review(statement_id: int, approve: Annotated[bool, typer.Option("--approve/--reject")],
                     comment: str | None = None, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Review at the next level (information staff → information head → leadership)."""
    def body() -> None:
        st = service().review_statement(statement_id, actor=actor(by), approve=approve, comment=comment)
        emit(dump(st)) if as_json else out.print(f"statement #{st.id}: {st.status} ({len(st.reviews)} review(s))")
    run(body, as_json)


@statement_app.command("release")
def statement_release(statement_id: int, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Release an approved statement."""
    def body() -> None:
        st = service().release_statement(statement_id, actor=actor(by))
        emit(dump(st)) if as_json else out.print(f"statement #{st.id} released")
    run(body, as_json)


# --------------------------------------------------------------------------- playbooks
@playbook_app.command("validate")
def playbook_validate(paths: Annotated[list[Path] | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
    """Validate playbook files (default: the playbook folder) and the roster."""
    def body() -> None:
        from crisis.playbook import PlaybookSet, check_roster, load_playbook, load_playbooks
        from crisis.roster import load_roster

        if paths:
            books = {str(p): load_playbook(p) for p in paths}
            pbs = PlaybookSet({b.category: b for b in books.values()}, {b.category: f for f, b in books.items()})
        else:
            pbs = load_playbooks(settings().playbooks_dir)
        check_roster(pbs, load_roster(settings().roster_path))
        found = [b.category for b in pbs]
        emit({"ok": True, "categories": found}) if as_json else out.print(f"ok: {', '.join(found)}")
    run(body, as_json)


@playbook_app.command("show")
def playbook_show(category: str, severity: str = "II", as_json: JsonOpt = False) -> None:
    """Tasks and deadlines of a playbook for one grade."""
    def body() -> None:
        from crisis.playbook import load_playbooks
        from crisis.severity import Severity

        pb = load_playbooks(settings().playbooks_dir).get(category)
        sev = Severity.parse(severity)
        rows = [{"stage": st, "key": t.key, "group": t.group, "title": t.title.zh, "title_en": t.title.en,
                 "required": t.required, "anchor": t.anchor,
                 "due": format_duration(t.due[sev]) if t.due else None}
                for st, spec in pb.stages.items() for t in spec.tasks]
        if as_json:
            emit({"category": pb.category, "severity": sev.value, "tasks": rows})
            return
        t = Table("stage", "key", "group", "title", "req", "due", "from")
        for r in rows:
            t.add_row(r["stage"], r["key"], r["group"], r["title"], "yes" if r["required"] else "", r["due"] or "-",
                      r["anchor"])
        out.print(t)
    run(body, as_json)


# --------------------------------------------------------------------------- scheduler
@scheduler_app.command("run")
def scheduler_run(sweep: Annotated[float, typer.Option(help="Safety-net sweep interval, seconds.")] = 30.0) -> None:
    """Run the scheduler (one per database): fires deadlines, survives restarts, delivers notifications."""
    def body() -> None:
        from crisis import scheduler

        scheduler.run(settings(), sweep_seconds=sweep)
    run(body, False)


# --------------------------------------------------------------------------- drills
@drill_app.command("run")
def drill_run(
    scenario: Path,
    speed: Annotated[float | None, typer.Option(help="Virtual seconds per real second (e.g. 600).")] = None,
    instant: Annotated[bool, typer.Option(help="Jump from event to event (default).")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Reports folder (default reports/drills/RUN).")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL for the drill (default store/drills/RUN.db).")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone for reports (default CRISIS_TZ).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a drill scenario on the embedded store; print the timeline and a scorecard, write reports."""
    from crisis.drill.cli import run_drill_command

    if speed is not None and instant:
        err.print("[bold red]error:[/] --speed and --instant exclude each other")
        raise typer.Exit(2)
    if speed is not None and speed <= 0:
        err.print("[bold red]error:[/] --speed must be greater than zero")
        raise typer.Exit(2)
    run(lambda: run_drill_command(scenario, speed=speed, out_dir=out_dir, db_url=db, tz=tz or settings().tz,
                                  as_json=as_json,
                                  settings=settings(), console=out), as_json)


@drill_app.command("validate")
def drill_validate(scenario: Path, as_json: JsonOpt = False) -> None:
    """Check a scenario against the playbooks and roster without running it."""
    def body() -> None:
        from crisis.drill.cli import load_checked

        ls, _, _ = load_checked(scenario, settings())
        emit({"ok": True, "steps": len(ls.scenario.steps)}) if as_json else out.print(
            f"ok: {ls.scenario.name}, {len(ls.scenario.steps)} steps")
    run(body, as_json)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
