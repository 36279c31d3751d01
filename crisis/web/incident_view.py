"""What the incident page shows: the incident with the actions this person may take (asked of the policy,
so only pressable buttons appear), tasks by group, escalations, statements, signal trends and the timeline."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from crisis.engine import policy
from crisis.engine.fsm import FINAL, MACHINE
from crisis.principal import for_person
from crisis.service import CrisisService
from crisis.service.statements import statement_facts
from crisis.store.models import Event, Task

GRADES = ("I", "II", "III", "IV")


def build(svc: CrisisService, person: str, incident_id: int, now: datetime) -> dict[str, Any]:
    inc = svc.incident(incident_id)
    tasks, escs = svc.tasks(incident_id), svc.escalations(incident_id)
    statements, timeline = svc.statements(incident_id), svc.timeline(incident_id)
    who = for_person(svc.roster, person, "session", now)
    paged: dict[int, set[str]] = defaultdict(set)
    for e in escs:
        paged[e.task_id].add(e.recipient)
    open_required = tuple(t.key for t in tasks if t.status == "open" and t.required and t.cycle == inc.cycle
                          and t.stage == inc.stage)
    facts = policy.IncidentFacts(id=inc.id or 0, stage=inc.stage, severity=inc.severity,
                                 allowed_triggers=tuple(MACHINE.allowed(inc.stage)), open_required=open_required,
                                 final=inc.stage in FINAL)
    actions = policy.incident_actions(who, facts)
    triggers = [t for t in MACHINE.allowed(inc.stage) if actions[f"fire:{t}"]]
    task_acts = {t.id: policy.task_actions(who, _task_facts(t, paged)) for t in tasks}
    by_group: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        by_group[t.group].append(t)
    tasks_by_id = {t.id: t for t in tasks}
    return {"inc": inc, "triggers": triggers, "may_override": bool(actions["override"]),
            "may_note": bool(actions["note"]),
            "groups": dict(by_group), "task_acts": task_acts, "escalations": escs, "tasks_by_id": tasks_by_id,
            "statements": [(st, policy.statement_actions(who, statement_facts(st))) for st in statements],
            "timeline": timeline, "trends": trends(inc.signals, timeline), "grades": GRADES}


def _task_facts(t: Task, paged: dict[int, set[str]]) -> policy.TaskFacts:
    return policy.TaskFacts(id=t.id or 0, group=t.group, assignee=t.assignee, status=t.status, required=t.required,
                            paged=frozenset(paged.get(t.id or 0, ())), acked=t.acked_at is not None)


def trends(current: dict[str, Any], timeline: list[Event]) -> dict[str, str]:
    """Per signal, an SVG polyline's points (120×30 box) through its recorded values, oldest first."""
    series: dict[str, list[float]] = defaultdict(list)
    for ev in timeline:
        if ev.kind == "signals_updated":
            for key, val in (ev.data.get("before") or {}).items():
                if not series[key] and isinstance(val, int | float):
                    series[key].append(float(val))
            for key, val in (ev.data.get("after") or {}).items():
                if isinstance(val, int | float):
                    series[key].append(float(val))
    for key, val in current.items():
        if not series[key] and isinstance(val, int | float):
            series[key].append(float(val))
    return {key: _points(vals) for key, vals in series.items() if vals}


def _points(vals: list[float]) -> str:
    if len(vals) == 1:
        vals = vals * 2
    top, low = max(vals), min(vals)
    span = (top - low) or 1.0
    step = 120 / (len(vals) - 1)
    return " ".join(f"{i * step:.1f},{28 - (v - low) / span * 26:.1f}" for i, v in enumerate(vals))
