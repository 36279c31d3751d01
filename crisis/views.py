"""Read models: what adapters show, each built from one read transaction (one consistent snapshot).

The CLI's `show`, the HTTP API and the web pages read an incident through `incident_detail`, so none of
them assembles a view from several queries or asks the state machine itself. Lists, "my work" and
`events_since` live on the service's queries (paged there); this module adds the one-snapshot views.
Every view is a dataclass of rows and plain values; `crisis.jsonout` turns it into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from crisis.engine import policy
from crisis.engine.fsm import FINAL, MACHINE, STAGE_NAMES
from crisis.errors import NotFound
from crisis.principal import Principal
from crisis.roster import GROUPS
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
    paged: dict[int, set[str]] = {}
    for e in escs:
        paged.setdefault(e.task_id, set()).add(e.recipient)
    grouped: dict[str, list[TaskView]] = {g: [] for g in GROUPS}
    for t in tasks:
        tv = TaskView(t, overdue=t.status == "open" and t.due_at is not None and t.due_at < now)
        if who is not None:
            facts = policy.TaskFacts(id=t.id or 0, group=t.group, assignee=t.assignee, status=t.status,
                                     required=t.required, paged=frozenset(paged.get(t.id or 0, ())),
                                     acked=t.acked_at is not None)
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
