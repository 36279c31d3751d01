"""What the incident page shows: the incident with the actions this person may take (asked of the policy,
so only pressable buttons appear), tasks by group, escalations, statements, signal trends and the timeline."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from crisis import views
from crisis.engine import policy
from crisis.principal import Principal, for_person
from crisis.service import CrisisService
from crisis.service.statements import statement_facts, statement_findings
from crisis.store.models import Event

GRADES = ("I", "II", "III", "IV")


def build(svc: CrisisService, person: str, incident_id: int, now: datetime) -> dict[str, Any]:
    """The page's context from `views.incident_detail` (one snapshot, the read the CLI and API use), with what
    this person may do as the policy answered it there; statements' actions are asked of the policy here."""
    d = views.incident_detail(svc, incident_id, principal=Principal(person=person, auth="session"))
    who = for_person(svc.roster, person, "session", now)
    allowed = set(d.actions.get("allowed", ()))
    groups = {g: [tv.task for tv in tvs] for g, tvs in d.tasks.items() if tvs}
    return {"inc": d.incident, "version": d.version,
            "triggers": [t for t in d.allowed_triggers if f"fire:{t}" in allowed],
            "may_override": "override" in allowed, "may_note": "note" in allowed,
            "may_draft": "draft_statement" in allowed,
            "warnings": {st.id: statement_findings(st) for st in d.statements if st.status != "released"},
            "groups": groups, "task_acts": {tv.task.id: tv.actions for tvs in d.tasks.values() for tv in tvs},
            "escalations": d.escalations, "tasks_by_id": {t.id: t for t in d.all_tasks},
            "statements": [(st, policy.statement_actions(who, statement_facts(st))) for st in d.statements],
            "timeline": d.timeline, "trends": trends(d.incident.signals, d.timeline), "grades": GRADES}


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
