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
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from crisis.engine.fsm import FINAL, MACHINE, STAGE_NAMES
from crisis.errors import NotFound
from crisis.roster import GROUPS
from crisis.store.lite import ALL_ROWS, Snapshot, in_list, snapshot
from crisis.store.records import TABLES, Escalation, Event, Incident, Statement, Task, build, columns, utc

if TYPE_CHECKING:  # the models of playbooks and principals load with the views that take them
    from crisis.playbook import Playbook
    from crisis.principal import Principal
    from crisis.severity import Severity

R = TypeVar("R")
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a listing; the same reads (here and in crisis.service.queries) serve the CLI, the API and
    the web board."""

    items: list[R]
    total: int
    limit: int | None  # None: everything
    offset: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.items)
        return end if self.limit is not None and end < self.total else None


def _select(snap: Snapshot, cls: type[R], rest: str, params: dict[str, Any] | None = None,
            alias: str | None = None) -> list[R]:
    """Records of `cls` from `SELECT <its columns> FROM <its table> [alias] <rest>`."""
    sql = f"SELECT {columns(cls, alias)} FROM {TABLES[cls]}{' ' + alias if alias else ''} {rest}"
    return [build(cls, r) for r in snap.rows(sql, params)]


def _page(limit: int | None, offset: int) -> dict[str, int]:
    return {"limit": ALL_ROWS if limit is None else limit, "offset": offset}


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
    p = {"i": incident_id}
    with snapshot(svc.engine) as snap:
        found = _select(snap, Incident, "WHERE id = :i", p)
        if not found:
            raise NotFound(f"no incident #{incident_id}")
        inc = found[0]
        tasks = _select(snap, Task, "WHERE incident_id = :i ORDER BY id", p)
        escs = _select(snap, Escalation, "WHERE incident_id = :i ORDER BY fired_at, id", p)
        statements = _select(snap, Statement, "WHERE incident_id = :i ORDER BY id", p)
        events = _select(snap, Event, "WHERE incident_id = :i ORDER BY at, id", p)
    who = svc._principal(principal, now) if principal is not None else None
    grouped: dict[str, list[TaskView]] = {g: [] for g in GROUPS}
    for t in tasks:
        grouped.setdefault(t.group, []).append(
            TaskView(t, overdue=t.status == "open" and t.due_at is not None and t.due_at < now))
    detail = IncidentDetail(inc, STAGE_NAMES[inc.stage], allowed_triggers(inc.stage), grouped, escs, statements,
                            events, inc.version, now)
    if who is not None:
        _with_actions(detail, who, tasks)
    return detail


def _with_actions(detail: IncidentDetail, who: Principal, tasks: list[Task]) -> None:
    """Fill in what `who` may do on the incident and on each task (crisis.engine.policy decides)."""
    from crisis.engine import policy
    from crisis.service.tasks import task_facts  # the facts the service itself decides on

    inc = detail.incident
    fired: dict[int, list[Escalation]] = {}
    for e in detail.escalations:
        fired.setdefault(e.task_id, []).append(e)
    for tvs in detail.tasks.values():
        for tv in tvs:
            facts = task_facts(tv.task, fired.get(tv.task.id or 0, []))
            tv.actions = {k: d.allowed for k, d in policy.task_actions(who, facts).items()}
    open_required = tuple(t.key for t in tasks if t.status == "open" and t.required and t.stage == inc.stage
                          and t.cycle == inc.cycle)
    facts = policy.IncidentFacts(id=inc.id or 0, stage=inc.stage, severity=inc.severity,
                                 allowed_triggers=tuple(detail.allowed_triggers), open_required=open_required,
                                 final=inc.stage in FINAL)
    decisions = policy.incident_actions(who, facts)
    detail.actions = {"allowed": sorted(policy.allowed(decisions.values())), "refused": policy.refusals(decisions)}


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
    conds: list[str] = []
    p: dict[str, Any] = {}
    if stage is not None:
        conds.append("stage = :stage")
        p["stage"] = stage
    if category is not None:
        conds.append("category = :category")
        p["category"] = category
    if final is not None:
        conds.append(f"stage {'IN' if final else 'NOT IN'} {in_list('final', FINAL, p)}")
    if not watch:
        conds.append("stage != 'watch'")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    with snapshot(svc.engine) as snap:
        total = snap.rows(f"SELECT count(*) FROM incident {where}", p)[0][0]
        items = _select(snap, Incident, f"{where} ORDER BY id DESC LIMIT :limit OFFSET :offset",
                        {**p, **_page(limit, offset)})
        q: dict[str, Any] = {"now": snap.time(now)}
        ids = in_list("ids", [i.id for i in items], q)
        # "open" is tested inside the aggregates, not in WHERE: a status-first index must not look cheaper to
        # the planner than the page's few incidents (it would walk every open task of the history)
        due = {iid: (utc(nxt), int(n or 0), int(k or 0)) for iid, nxt, n, k in snap.rows(
            "SELECT incident_id, min(CASE WHEN status = 'open' THEN due_at END), "
            "sum(CASE WHEN status = 'open' AND due_at < :now THEN 1 ELSE 0 END), "  # a NULL deadline is never late
            f"sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END) FROM task WHERE incident_id IN {ids} "
            "GROUP BY incident_id", q)}
        unacked = {iid: int(n or 0) for iid, n in snap.rows(
            "SELECT e.incident_id, sum(CASE WHEN t.status = 'open' THEN 1 ELSE 0 END) FROM escalation e "
            f"JOIN task t ON t.id = e.task_id WHERE e.incident_id IN {ids} AND e.acked_at IS NULL "
            # answered by its own acknowledgement or by one of its task's chain made after it fired
            # (acknowledging holds the whole chain: crisis.acklink)
            "AND (t.acked_at IS NULL OR e.fired_at > t.acked_at) GROUP BY e.incident_id", q)}
    rows = []
    for i in items:
        nxt, late_n, n_open = due.get(i.id or 0, (None, 0, 0))
        rows.append(IncidentRow(i, nxt, late_n, unacked.get(i.id or 0, 0), n_open))
    return Page(rows, total, limit, offset)


# ---------------------------------------------------------------------------- escalations
def escalation_page(svc: Any, incident_id: int | None = None, *, pending: bool = False,
                    limit: int | None = DEFAULT_PAGE, offset: int = 0) -> Page[Escalation]:
    """Escalations, one page: pending ones (of open tasks, acknowledged or not: an acknowledgement only holds
    the chain for a while) most overdue first, the others newest first."""
    p: dict[str, Any] = {}
    conds = []
    if incident_id is not None:
        conds.append("e.incident_id = :i")
        p["i"] = incident_id
    join = ""
    if pending:
        join = "JOIN task t ON t.id = e.task_id "
        conds.append("t.status = 'open'")
    where = join + (f"WHERE {' AND '.join(conds)}" if conds else "")
    # t.id rather than its equal e.task_id: the order the (status, due_at) index walks in, so a page stops early
    order = "t.due_at, t.id, e.level DESC" if pending else "e.fired_at DESC, e.id DESC"
    with snapshot(svc.engine) as snap:
        items = _select(snap, Escalation, f"{where} ORDER BY {order} LIMIT :limit OFFSET :offset",
                        {**p, **_page(limit, offset)}, alias="e")
        total = snap.rows(f"SELECT count(*) FROM escalation e {where}", p)[0][0]
    return Page(items, total, limit, offset)


def incident_row(svc: Any, incident_id: int) -> Incident:
    """One incident as a record (NotFound as `svc.incident`): what a write command's CLI reads around it."""
    with snapshot(svc.engine) as snap:
        found = _select(snap, Incident, "WHERE id = :i", {"i": incident_id})
    if not found:
        raise NotFound(f"no incident #{incident_id}")
    return found[0]


def timeline(svc: Any, incident_id: int) -> list[Event]:
    """An incident's audit events, oldest first (`svc.timeline` without the ORM)."""
    with snapshot(svc.engine) as snap:
        return _select(snap, Event, "WHERE incident_id = :i ORDER BY at, id", {"i": incident_id})


def incident_tasks(svc: Any, incident_id: int) -> list[Task]:
    """An incident's tasks, every cycle, in creation order (none for an unknown incident)."""
    with snapshot(svc.engine) as snap:
        return _select(snap, Task, "WHERE incident_id = :i ORDER BY id", {"i": incident_id})


def tasks_by_id(svc: Any, task_ids: list[int]) -> dict[int, Task]:
    """The tasks with these ids (a page's worth), by id."""
    p: dict[str, Any] = {}
    with snapshot(svc.engine) as snap:
        found = _select(snap, Task, f"WHERE id IN {in_list('t', sorted(set(task_ids)), p)}", p)
    return {t.id or 0: t for t in found}


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
    p: dict[str, Any] = {"who": person}
    with snapshot(svc.engine) as snap:
        tasks = _select(snap, Task, "WHERE assignee = :who AND status = 'open' ORDER BY id DESC", p)
        escs = _select(snap, Escalation, "JOIN task t ON t.id = e.task_id WHERE e.recipient = :who "
                       "AND t.status = 'open' ORDER BY e.fired_at DESC, e.id DESC", p, alias="e")
        ids = sorted({t.incident_id for t in tasks} | {e.incident_id for e in escs})
        titles = {i: title for i, title in snap.rows(f"SELECT id, title FROM incident WHERE id IN "
                                                      f"{in_list('i', ids, p)}", p)} if ids else {}
    return MyWork(person, tasks, escs, now, titles)


@dataclass
class EscalationDetail:
    """One escalation with its task and incident and the task's whole chain so far (who was paged before)."""

    escalation: Escalation
    task: Task
    incident: Incident
    chain: list[Escalation]  # every escalation of the task, by level then firing order


def escalation_detail(svc: Any, escalation_id: int) -> EscalationDetail:
    """What a one-tap acknowledgement page shows, from one read transaction."""
    with snapshot(svc.engine) as snap:
        found = _select(snap, Escalation, "WHERE id = :e", {"e": escalation_id})
        if not found:
            raise NotFound(f"no escalation #{escalation_id}")
        esc = found[0]
        task = _select(snap, Task, "WHERE id = :t", {"t": esc.task_id})
        inc = _select(snap, Incident, "WHERE id = :i", {"i": esc.incident_id})
        chain = _select(snap, Escalation, "WHERE task_id = :t ORDER BY level, fired_at, id", {"t": esc.task_id})
    if not task or not inc:
        raise NotFound(f"escalation #{escalation_id} has lost its task or incident")
    return EscalationDetail(esc, task[0], inc[0], chain)


# ---------------------------------------------------------------------------- live updates
def events_since(svc: Any, since_id: int, *, limit: int = DEFAULT_PAGE) -> list[Event]:
    """Audit events of every incident after event `since_id`, in id order (poll with the last id)."""
    with snapshot(svc.engine) as snap:
        return _select(snap, Event, "WHERE id > :since ORDER BY id LIMIT :limit", {"since": since_id,
                                                                                   "limit": limit})


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
