"""Read models: what adapters show, each built from one read transaction (one consistent snapshot).

The CLI's `show`, the HTTP API and the web pages read an incident through `incident_detail`, so none of
them assembles a view from several queries or asks the state machine itself; the incident list, a person's
work, `events_since` and the playbook outline live here too, so every adapter reads the same thing.
Every view is a dataclass of rows and plain values; `crisis.jsonout` turns it into JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, or_
from sqlmodel import col, func, select

from crisis.engine import policy
from crisis.engine.fsm import FINAL, MACHINE, STAGE_NAMES
from crisis.errors import NotFound
from crisis.playbook import Playbook
from crisis.principal import Principal
from crisis.roster import GROUPS
from crisis.service.queries import DEFAULT_PAGE, Page
from crisis.service.tasks import live_ack
from crisis.severity import Severity
from crisis.store.db import read_session
from crisis.store.models import Escalation, Event, Incident, Statement, Task


def allowed_triggers(stage: str) -> list[str]:
    """The stage triggers that exist from `stage` (guards aside): what a UI offers to fire."""
    return MACHINE.allowed(stage)


@dataclass
class TaskView:
    task: Task
    overdue: bool  # open and past its deadline at the snapshot's time
    actions: dict[str, bool] = field(default_factory=dict)  # with a principal: complete / ack / applicable


@dataclass
class IncidentDetail:
    """An incident as one snapshot: stage (with its zh/en names), the triggers it allows, tasks per group
    with overdue flags, escalations, statements, the audit timeline and the version to send back."""

    incident: Incident
    stage_names: tuple[str, str]
    allowed_triggers: list[str]
    tasks: dict[str, list[TaskView]]  # group → tasks, in creation order
    escalations: list[Escalation]
    statements: list[Statement]
    timeline: list[Event]
    version: int
    at: datetime  # when the snapshot was taken (overdue flags are relative to it)
    actions: dict[str, Any] = field(default_factory=dict)  # with a principal: allowed / refused (with rule)

    @property
    def all_tasks(self) -> list[Task]:
        return sorted((tv.task for tvs in self.tasks.values() for tv in tvs), key=lambda t: t.id or 0)


def incident_detail(svc: Any, incident_id: int, *, principal: Principal | None = None) -> IncidentDetail:
    """The whole incident from one read transaction; with `principal`, what that person may do."""
    now = svc.clock.now()
    with read_session(svc.engine) as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise NotFound(f"no incident #{incident_id}")
        tasks = list(s.exec(select(Task).where(Task.incident_id == incident_id).order_by(col(Task.id))).all())
        escs = list(s.exec(select(Escalation).where(Escalation.incident_id == incident_id)
                           .order_by(col(Escalation.fired_at), col(Escalation.id))).all())
        statements = list(s.exec(select(Statement).where(Statement.incident_id == incident_id)
                                 .order_by(col(Statement.id))).all())
        events = list(s.exec(select(Event).where(Event.incident_id == incident_id)
                             .order_by(col(Event.at), col(Event.id))).all())
    who = svc._principal(principal, now) if principal is not None else None
    fired: dict[int, list[Escalation]] = {}
    for e in escs:
        fired.setdefault(e.task_id, []).append(e)
    grouped: dict[str, list[TaskView]] = {g: [] for g in GROUPS}
    for t in tasks:
        tv = TaskView(t, overdue=t.status == "open" and t.due_at is not None and t.due_at < now)
        if who is not None:
            facts = policy.TaskFacts(id=t.id or 0, group=t.group, assignee=t.assignee, status=t.status,
                                     required=t.required,
                                     paged=frozenset(e.recipient for e in fired.get(t.id or 0, ())),
                                     acked=live_ack(t, fired.get(t.id or 0, [])))  # as the service decides
            tv.actions = {k: d.allowed for k, d in policy.task_actions(who, facts).items()}
        grouped.setdefault(t.group, []).append(tv)
    detail = IncidentDetail(inc, STAGE_NAMES[inc.stage], allowed_triggers(inc.stage), grouped, escs, statements,
                            events, inc.version, now)
    if who is not None:
        open_required = tuple(t.key for t in tasks if t.status == "open" and t.required and t.stage == inc.stage
                              and t.cycle == inc.cycle)
        facts = policy.IncidentFacts(id=inc.id or 0, stage=inc.stage, severity=inc.severity,
                                     allowed_triggers=tuple(detail.allowed_triggers), open_required=open_required,
                                     final=inc.stage in FINAL)
        decisions = policy.incident_actions(who, facts)
        detail.actions = {"allowed": sorted(policy.allowed(decisions.values())),
                          "refused": policy.refusals(decisions)}
    return detail


# ---------------------------------------------------------------------------- incident list
@dataclass
class IncidentRow:
    """One line of the incident list: the incident and what needs attention in it at the snapshot's time."""

    incident: Incident
    next_deadline: datetime | None  # earliest due time among its open tasks
    overdue: int  # open tasks past their deadline
    unacked: int  # escalations of open tasks nobody has acknowledged (nor the task's chain since they fired)
    open_tasks: int = 0


def incident_list(svc: Any, *, stage: str | None = None, category: str | None = None, final: bool | None = False,
                  watch: bool = True, limit: int | None = DEFAULT_PAGE, offset: int = 0) -> Page[IncidentRow]:
    """Incidents newest first, one page, filtered by stage, category and open (`final=False`, the default) /
    final (`True`) / either (`None`); `watch=False` leaves out the watch-listed (the board's "open" tab).
    One snapshot and a fixed number of statements whatever the page size: the per-incident figures come from
    grouped queries over the page's ids, never one query per incident."""
    now = svc.clock.now()
    conds: list[Any] = []
    if stage is not None:
        conds.append(Incident.stage == stage)
    if category is not None:
        conds.append(Incident.category == category)
    if final is not None:
        conds.append(col(Incident.stage).in_(FINAL) if final else col(Incident.stage).not_in(FINAL))
    if not watch:
        conds.append(Incident.stage != "watch")
    with read_session(svc.engine) as s:
        total = s.exec(select(func.count()).select_from(Incident).where(*conds)).one()
        items = list(s.exec(select(Incident).where(*conds).order_by(col(Incident.id).desc())
                            .offset(offset).limit(limit)).all())
        ids = [i.id for i in items if i.id is not None]
        open_ = and_(col(Task.incident_id).in_(ids), Task.status == "open")
        late = func.sum(case((col(Task.due_at) < now, 1), else_=0))  # a NULL deadline is never late
        due = {iid: (nxt, n or 0, k) for iid, nxt, n, k in s.exec(select(
            Task.incident_id, func.min(Task.due_at), late, func.count()).where(open_).group_by(Task.incident_id)).all()}
        # an escalation is answered by its own acknowledgement or by one of its task's chain made after it fired
        # (acknowledging holds the whole chain: crisis.acklink)
        waiting = and_(col(Escalation.acked_at).is_(None),
                       or_(col(Task.acked_at).is_(None), col(Escalation.fired_at) > col(Task.acked_at)))
        unacked = dict(s.exec(select(Escalation.incident_id, func.count()).join(
            Task, col(Task.id) == Escalation.task_id).where(open_, waiting).group_by(Escalation.incident_id)).all())
    rows = []
    for i in items:
        nxt, late_n, n_open = due.get(i.id or 0, (None, 0, 0))
        rows.append(IncidentRow(i, nxt, late_n, unacked.get(i.id or 0, 0), n_open))
    return Page(rows, total, limit, offset)


# ---------------------------------------------------------------------------- a person's work
@dataclass
class MyWork:
    """What a person has to do: open tasks assigned to them and escalations that paged them for open tasks."""

    person: str
    tasks: list[Task]  # newest first
    escalations: list[Escalation]  # newest first
    at: datetime
    titles: dict[int, str] = field(default_factory=dict)  # incident id → title, for those listed


def my_work(svc: Any, person: str) -> MyWork:
    """A person's open tasks and pending escalations, newest first, with their incidents' titles, from one
    read transaction (three statements)."""
    now = svc.clock.now()
    with read_session(svc.engine) as s:
        tasks = list(s.exec(select(Task).where(Task.assignee == person, Task.status == "open")
                            .order_by(col(Task.id).desc())).all())
        escs = list(s.exec(select(Escalation).join(Task, col(Task.id) == Escalation.task_id).where(
            Escalation.recipient == person, Task.status == "open")
            .order_by(col(Escalation.fired_at).desc(), col(Escalation.id).desc())).all())
        ids = {t.incident_id for t in tasks} | {e.incident_id for e in escs}
        titles = dict(s.exec(select(Incident.id, Incident.title).where(col(Incident.id).in_(ids))).all()) \
            if ids else {}
    return MyWork(person, tasks, escs, now, titles)  # type: ignore[arg-type]


@dataclass
class EscalationDetail:
    """One escalation with its task and incident and the task's whole chain so far (who was paged before)."""

    escalation: Escalation
    task: Task
    incident: Incident
    chain: list[Escalation]  # every escalation of the task, by level then firing order


def escalation_detail(svc: Any, escalation_id: int) -> EscalationDetail:
    """What a one-tap acknowledgement page shows, from one read transaction."""
    with read_session(svc.engine) as s:
        esc = s.get(Escalation, escalation_id)
        if esc is None:
            raise NotFound(f"no escalation #{escalation_id}")
        task, inc = s.get(Task, esc.task_id), s.get(Incident, esc.incident_id)
        chain = list(s.exec(select(Escalation).where(Escalation.task_id == esc.task_id)
                            .order_by(col(Escalation.level), col(Escalation.fired_at), col(Escalation.id))).all())
    if task is None or inc is None:
        raise NotFound(f"escalation #{escalation_id} has lost its task or incident")
    return EscalationDetail(esc, task, inc, chain)


# ---------------------------------------------------------------------------- live updates
def events_since(svc: Any, since_id: int, *, limit: int = DEFAULT_PAGE) -> list[Event]:
    """Audit events of every incident after event `since_id`, in id order (poll with the last id)."""
    with read_session(svc.engine) as s:
        return list(s.exec(select(Event).where(col(Event.id) > since_id).order_by(col(Event.id))
                           .limit(limit)).all())


# ---------------------------------------------------------------------------- playbook outline
@dataclass
class OutlineTask:
    stage: str
    key: str
    group: str
    title: str
    title_en: str
    required: bool
    anchor: str
    due: timedelta | None  # for the outline's grade; None: no deadline
    escalate: bool = True  # a missed deadline starts the stage's chain


@dataclass
class OutlineStage:
    stage: str
    names: tuple[str, str]
    tasks: list[OutlineTask]
    chain: list[str]  # who is chased, in order, once a deadline of this stage passes
    wait: timedelta  # between chain steps, for the grade
    repeat: int


@dataclass
class PlaybookOutline:
    category: str
    name: str
    severity: str
    stages: list[OutlineStage]

    @property
    def tasks(self) -> list[OutlineTask]:
        return [t for st in self.stages for t in st.tasks]


def playbook_outline(pb: Playbook, severity: Severity) -> PlaybookOutline:
    """A playbook for one grade: per stage its tasks with deadlines and the escalation chain (pure)."""
    stages = []
    for name, spec in pb.stages.items():
        chain = pb.escalation_for(name)
        tasks = [OutlineTask(name, t.key, t.group, t.title.zh, t.title.en, t.required, t.anchor,
                             t.due[severity] if t.due else None, t.escalate) for t in spec.tasks]
        stages.append(OutlineStage(name, STAGE_NAMES.get(name, (name, name)), tasks, list(chain.chain),
                                   chain.wait[severity], chain.repeat))
    return PlaybookOutline(pb.category, pb.name.zh, severity.value, stages)


def outline_json(o: PlaybookOutline) -> dict[str, Any]:
    """The outline as JSON (deadlines and waits as readable durations): the CLI and the API print the same."""
    from crisis.durations import format_duration

    def task(t: OutlineTask) -> dict[str, Any]:
        return {"stage": t.stage, "key": t.key, "group": t.group, "title": t.title, "title_en": t.title_en,
                "required": t.required, "anchor": t.anchor, "due": format_duration(t.due) if t.due else None}

    return {"category": o.category, "name": o.name, "severity": o.severity, "tasks": [task(t) for t in o.tasks],
            "stages": [{"stage": st.stage, "names": list(st.names), "chain": st.chain,
                        "wait": format_duration(st.wait), "repeat": st.repeat,
                        "tasks": [t.key for t in st.tasks]} for st in o.stages]}


# ---------------------------------------------------------------------------- drill runs
DRILL_REPORT_FILE = re.compile(r"^(incident_report|after_action|scorecard)\.(zh-CN|en)\.(md|pdf)$")


@dataclass
class DrillRun:
    """One incident of a drill run as `crisis drill run` left it: its scorecard's figures and its report files.
    `folder` is relative to the drills folder (the run's folder, or run/incident when several were replayed)."""

    folder: str
    run: dict[str, Any]
    scenario: dict[str, Any]
    incident: dict[str, Any]
    metrics: dict[str, Any]
    expectations: list[dict[str, Any]]
    reports: dict[tuple[str, str], list[str]]  # (kind, lang) → formats written, md first
    at: datetime  # when the scorecard was written (UTC; the list is newest first)


def drill_runs(folder: Path, *, limit: int = 200) -> list[DrillRun]:
    """Drill runs under `folder` (`crisis drill run` writes reports/drills/RUN/scorecard.json, or
    RUN/INCIDENT/scorecard.json for several incidents), newest first, at most `limit`. Only reads files; a
    scorecard that is not readable JSON is left out rather than failing the list."""
    if not folder.is_dir():
        return []
    cards = sorted([*folder.glob("*/scorecard.json"), *folder.glob("*/*/scorecard.json")],
                   key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    runs = []
    for card in cards:
        try:
            doc = json.loads(card.read_text(encoding="utf-8"))
            scenario, run = doc["scenario"] or {}, doc["run"] or {}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        reports: dict[tuple[str, str], list[str]] = {}
        for f in sorted(card.parent.iterdir(), key=lambda p: (p.suffix != ".md", p.name)):
            m = DRILL_REPORT_FILE.match(f.name)
            if m:
                reports.setdefault((m[1], m[2]), []).append(m[3])
        runs.append(DrillRun(card.parent.relative_to(folder).as_posix(), run, scenario, doc.get("incident") or {},
                             doc.get("metrics") or {}, doc.get("expectations") or [], reports,
                             datetime.fromtimestamp(card.stat().st_mtime, UTC)))
    return runs


def drill_file(folder: Path, relative: str) -> Path:
    """A drill report file by its path under `folder`, or NotFound: only report files and scorecard.json of
    a run's folder (one or two levels down), never anything else under or outside it."""
    parts = relative.split("/")
    name = parts[-1]
    if (not 2 <= len(parts) <= 3 or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
            or not (DRILL_REPORT_FILE.match(name) or name == "scorecard.json")):
        raise NotFound(f"no drill report {relative!r}")
    path = folder.joinpath(*parts)
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except OSError:
        inside = False
    if not inside or not path.is_file():
        raise NotFound(f"no drill report {relative!r}")
    return path
