"""One incident (or one escalation) as adapters show it, from one read transaction (one snapshot).

The CLI's `show`, the HTTP API, the web pages and the drill reports read an incident through
`incident_detail`, so none of them assembles a view from several queries or asks the state machine itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from crisis.engine.fsm import FINAL, MACHINE, STAGE_NAMES
from crisis.errors import NotFound
from crisis.roster import GROUPS
from crisis.store.lite import in_list, snapshot
from crisis.store.records import Escalation, Event, Incident, Statement, Task
from crisis.views.paging import select_records

if TYPE_CHECKING:  # the principal's model loads with the views that take one
    from crisis.principal import Principal


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
        found = select_records(snap, Incident, "WHERE id = :i", p)
        if not found:
            raise NotFound(what="incident", ref=incident_id)
        inc = found[0]
        tasks = select_records(snap, Task, "WHERE incident_id = :i ORDER BY id", p)
        escs = select_records(snap, Escalation, "WHERE incident_id = :i ORDER BY fired_at, id", p)
        statements = select_records(snap, Statement, "WHERE incident_id = :i ORDER BY id", p)
        events = select_records(snap, Event, "WHERE incident_id = :i ORDER BY at, id", p)
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


def incident_row(svc: Any, incident_id: int) -> Incident:
    """One incident as a record (NotFound as `svc.incident`): what a write command's CLI reads around it."""
    with snapshot(svc.engine) as snap:
        found = select_records(snap, Incident, "WHERE id = :i", {"i": incident_id})
    if not found:
        raise NotFound(what="incident", ref=incident_id)
    return found[0]


def timeline(svc: Any, incident_id: int) -> list[Event]:
    """An incident's audit events, oldest first (`svc.timeline` without the ORM)."""
    with snapshot(svc.engine) as snap:
        return select_records(snap, Event, "WHERE incident_id = :i ORDER BY at, id", {"i": incident_id})


def incident_tasks(svc: Any, incident_id: int) -> list[Task]:
    """An incident's tasks, every cycle, in creation order (none for an unknown incident)."""
    with snapshot(svc.engine) as snap:
        return select_records(snap, Task, "WHERE incident_id = :i ORDER BY id", {"i": incident_id})


def tasks_by_id(svc: Any, task_ids: list[int]) -> dict[int, Task]:
    """The tasks with these ids (a page's worth), by id."""
    p: dict[str, Any] = {}
    with snapshot(svc.engine) as snap:
        found = select_records(snap, Task, f"WHERE id IN {in_list('t', sorted(set(task_ids)), p)}", p)
    return {t.id or 0: t for t in found}


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
        found = select_records(snap, Escalation, "WHERE id = :e", {"e": escalation_id})
        if not found:
            raise NotFound(what="escalation", ref=escalation_id)
        esc = found[0]
        task = select_records(snap, Task, "WHERE id = :t", {"t": esc.task_id})
        inc = select_records(snap, Incident, "WHERE id = :i", {"i": esc.incident_id})
        chain = select_records(snap, Escalation, "WHERE task_id = :t ORDER BY level, fired_at, id",
                               {"t": esc.task_id})
    if not task or not inc:
        raise NotFound(f"escalation #{escalation_id} has lost its task or incident")
    return EscalationDetail(esc, task[0], inc[0], chain)
