"""Scorecard of one incident (drill or real): per-task timeliness, escalations, response-time metrics.

Pure over the rows read through the service, so the same figures feed the CLI, the JSON
output and the rendered reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from crisis.service import CrisisService
from crisis.store.models import Escalation, Event, Incident, Statement, Task

METRICS = ("time_to_report", "time_to_assessment", "time_to_first_statement", "time_to_close")


@dataclass(frozen=True)
class Expectation:
    """A facilitator's expectation (OpenEx-style statuses): a metric or a task done within a time (from the
    opening, or from the last reopen with `since="reopen"`), a person paged by a time, nobody paged at a
    level, or every escalation chain answered within a time of its first page."""

    name: str
    within: timedelta | None
    metric: str | None = None
    task: str | None = None
    since: str = "opening"
    paged: str | None = None
    level: int | None = None
    no_page_at_level: int | None = None
    answered: bool = False

    @property
    def kind(self) -> str:
        if self.no_page_at_level is not None:
            return "no_page_at_level"
        if self.paged is not None:
            return "paged"
        if self.answered:
            return "answered"
        return "metric" if self.metric else "task"


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _secs(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


def first_times(inc: Incident | None, events: list[Event]) -> dict[str, datetime | None]:
    """When the incident first reached each milestone."""
    out: dict[str, datetime | None] = dict.fromkeys(METRICS)
    for ev in events:
        if ev.kind == "stage_changed":
            if ev.to_state == "reported" and out["time_to_report"] is None:
                out["time_to_report"] = ev.at
            if ev.data.get("trigger") == "assess" and out["time_to_assessment"] is None:
                out["time_to_assessment"] = ev.at
            if ev.to_state in ("closed", "dismissed") and out["time_to_close"] is None:
                out["time_to_close"] = ev.at
        elif ev.kind == "statement_released" and out["time_to_first_statement"] is None:
            out["time_to_first_statement"] = ev.at
    return out


def task_row(task: Task, escalations: list[Escalation], names: dict[str, str]) -> dict[str, Any]:
    late = None
    if task.due_at is not None and task.done_at is not None:
        late = max(0.0, (task.done_at - task.due_at).total_seconds())
    mine = [e for e in escalations if e.task_id == task.id]
    if task.status == "done":
        outcome = "late" if late else "on_time"
    elif task.status == "open":
        outcome = "open"
    elif task.status == "cancelled" and not task.required:
        outcome = "skipped"
    else:
        outcome = "missed"  # waived by override, or cancelled by closure while required
    return {
        "id": task.id, "cycle": task.cycle, "stage": task.stage, "group": task.group, "key": task.key,
        "title": task.title_zh, "title_en": task.title_en, "required": task.required,
        "assignee": task.assignee, "assignee_name": names.get(task.assignee, task.assignee),
        "status": task.status, "outcome": outcome, "due_at": _iso(task.due_at), "done_at": _iso(task.done_at),
        "done_by": task.done_by, "late_seconds": late, "escalation_level": task.escalation_level,
        "escalations": len(mine), "acked_by": task.acked_by, "acked_at": _iso(task.acked_at),
    }


def escalation_row(esc: Escalation, tasks: dict[int, Task], names: dict[str, str]) -> dict[str, Any]:
    task = tasks.get(esc.task_id)
    return {
        "id": esc.id, "task": task.key if task else esc.task_id, "task_id": esc.task_id,
        "task_title": task.title_zh if task else "", "task_title_en": task.title_en if task else "",
        "level": esc.level, "target": esc.target, "recipient": esc.recipient,
        "recipient_name": names.get(esc.recipient, esc.recipient), "scheduled_at": _iso(esc.scheduled_at),
        "fired_at": _iso(esc.fired_at), "late_seconds": esc.late_seconds, "acked_at": _iso(esc.acked_at),
        "acked_by": esc.acked_by,
    }


def chain_rows(tasks: list[Task], escalations: list[Escalation], names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per escalation chain (a task's reminders, level after level), not per level.

    A chain is answered when someone acknowledged it or the task was completed after the first
    reminder: both mean a person picked it up. "Never acknowledged" counts chains, so a chain that
    climbed four levels before being answered is one answered chain, not three ignored reminders.
    """
    out = []
    for task in tasks:
        mine = sorted((e for e in escalations if e.task_id == task.id), key=lambda e: e.level)
        if not mine:
            continue
        first = mine[0].fired_at
        answers = [(task.acked_at, "acknowledged", task.acked_by)] if task.acked_at else []
        if task.done_at is not None and task.done_at >= first:
            answers.append((task.done_at, "completed", task.done_by))
        at, how, by = min(answers, key=lambda a: a[0]) if answers else (None, None, None)
        recipients = list(dict.fromkeys(e.recipient for e in mine))
        out.append({
            "task_id": task.id, "task": task.key, "task_title": task.title_zh, "task_title_en": task.title_en,
            "group": task.group, "cycle": task.cycle, "levels": len(mine), "max_level": mine[-1].level,
            "first_fired_at": _iso(first), "last_fired_at": _iso(mine[-1].fired_at),
            "recipients": recipients, "recipient_names": [names.get(r, r) for r in recipients],
            "reached_on_call": any(e.target == "on_call" for e in mine),
            "answer": how, "answered_at": _iso(at), "answered_by": by,
            "answered_by_name": names.get(by, by) if by else None,
            "answer_seconds": _secs(first, at),
        })
    return out


@dataclass(frozen=True)
class Record:
    """What the expectations are judged on, beyond the milestones and tasks."""

    events: list[Event]
    escalations: list[Escalation]
    chains: list[dict[str, Any]]
    reopened_at: datetime | None = None


def _measure(exp: Expectation, opened_at: datetime, milestones: dict[str, datetime | None], tasks: list[Task],
             rec: Record) -> tuple[float | None, bool | None]:
    """The expectation's value in seconds and, for yes/no expectations, whether it held (None: timed)."""
    origin = opened_at if exp.since == "opening" else rec.reopened_at
    if origin is None:  # `since: reopen` and the incident was never reopened
        return None, None
    kind = exp.kind
    if kind == "metric":
        later = first_times(None, [ev for ev in rec.events if ev.at >= origin]) if exp.since == "reopen" \
            else milestones
        return _secs(origin, later.get(exp.metric or "")), None
    if kind == "task":
        done = [t.done_at for t in tasks if t.key == exp.task and t.done_at is not None and t.created_at >= origin]
        return (_secs(origin, min(done)) if done else None), None
    if kind == "paged":
        hits = [e.fired_at for e in rec.escalations
                if e.recipient == exp.paged and (exp.level is None or e.level == exp.level) and e.fired_at >= origin]
        return (_secs(origin, min(hits)) if hits else None), None
    if kind == "no_page_at_level":
        hits = [e.fired_at for e in rec.escalations if e.level == exp.no_page_at_level
                and (exp.task is None or any(t.id == e.task_id and t.key == exp.task for t in tasks))]
        return (_secs(origin, min(hits)) if hits else None), not hits
    chains = [c for c in rec.chains if exp.task is None or c["task"] == exp.task]
    if any(c["answer_seconds"] is None for c in chains):
        return None, None
    return max((c["answer_seconds"] for c in chains), default=0.0), None


def evaluate(exp: Expectation, opened_at: datetime, milestones: dict[str, datetime | None],
             tasks: list[Task], finished: bool, record: Record | None = None) -> dict[str, Any]:
    """SUCCESS within the time, PARTIAL within twice the time, FAILED otherwise, PENDING if undecided;
    "nobody paged at level N" is SUCCESS or FAILED."""
    rec = record or Record(events=[], escalations=[], chains=[])
    value, held = _measure(exp, opened_at, milestones, tasks, rec)
    limit = exp.within.total_seconds() if exp.within is not None else None
    if held is not None:
        status = "SUCCESS" if held else "FAILED"
    elif value is None:
        status = "FAILED" if finished else "PENDING"
    elif limit is None or value <= limit:
        status = "SUCCESS"
    elif value <= 2 * limit:
        status = "PARTIAL"
    else:
        status = "FAILED"
    return {"name": exp.name, "kind": exp.kind, "metric": exp.metric, "task": exp.task, "since": exp.since,
            "paged": exp.paged, "level": exp.level or exp.no_page_at_level, "within_seconds": limit,
            "value_seconds": value, "status": status}


def build(svc: CrisisService, incident_id: int, *, expectations: list[Expectation] | None = None,
          finished: bool = True) -> dict[str, Any]:
    from crisis import views  # one snapshot of the incident, read the way every adapter reads it

    view = views.incident_detail(svc, incident_id)
    return score(view.incident, view.all_tasks, view.escalations, view.timeline, view.statements,
                 names={p.id: p.name for p in svc.roster.people}, expectations=expectations, finished=finished)


def score(inc: Incident, tasks: list[Task], escalations: list[Escalation], events: list[Event],
          statements: list[Statement], *, names: dict[str, str], expectations: list[Expectation] | None = None,
          finished: bool = True) -> dict[str, Any]:
    """The scorecard from an incident's records (tasks by id, escalations by fire time, events by time): pure, so
    a drill's report worker scores from the rows the replay read for it (crisis.drill.writer)."""
    by_id = {t.id: t for t in tasks if t.id is not None}
    milestones = first_times(inc, events)
    rows = [task_row(t, escalations, names) for t in tasks]
    with_due = [r for r in rows if r["due_at"]]
    acked = [e for e in escalations if e.acked_at]
    ack_delays = [(e.acked_at - e.fired_at).total_seconds() for e in acked if e.acked_at]
    lates = [e.late_seconds for e in escalations]
    chains = chain_rows(tasks, escalations, names)
    answer_delays = [c["answer_seconds"] for c in chains if c["answer_seconds"] is not None]
    metrics: dict[str, Any] = {f"{k}_seconds": _secs(inc.opened_at, v) for k, v in milestones.items()}
    metrics.update({
        "tasks_total": len(rows),
        "tasks_done": sum(r["status"] == "done" for r in rows),
        "tasks_on_time": sum(r["outcome"] == "on_time" for r in rows),
        "tasks_late": sum(r["outcome"] == "late" for r in rows),
        "tasks_missed": sum(r["outcome"] == "missed" for r in rows),
        "tasks_open": sum(r["outcome"] == "open" for r in rows),
        "tasks_skipped": sum(r["outcome"] == "skipped" for r in rows),
        "on_time_rate": (sum(r["outcome"] == "on_time" for r in with_due) / len(with_due)) if with_due else None,
        "escalations_fired": len(escalations),
        "escalations_acknowledged": len(acked),
        "max_escalation_level": max((e.level for e in escalations), default=None),
        "reached_on_call": sum(e.target == "on_call" for e in escalations),
        "median_ack_seconds": median(ack_delays) if ack_delays else None,
        "escalation_chains": len(chains),
        "chains_answered": sum(c["answer"] is not None for c in chains),
        "chains_unanswered": sum(c["answer"] is None for c in chains),
        "chains_reached_on_call": sum(c["reached_on_call"] for c in chains),
        "median_answer_seconds": median(answer_delays) if answer_delays else None,
        "max_timer_lateness_seconds": max(lates, default=None),
        "statements_released": sum(s.status == "released" for s in statements),
        "overrides": sum(ev.kind == "override" for ev in events),
        "rejected_actions": sum(ev.kind == "drill_action_rejected" for ev in events),
        "final_stage": inc.stage,
        "severity": inc.severity,
    })
    record = Record(events=events, escalations=escalations, chains=chains, reopened_at=inc.cycle_started_at)
    judged = [evaluate(x, inc.opened_at, milestones, tasks, finished, record) for x in expectations or []]
    if judged:
        points = sum({"SUCCESS": 1.0, "PARTIAL": 0.5}.get(j["status"], 0.0) for j in judged)
        metrics["expectation_score"] = round(100 * points / len(judged), 1)
    return {
        "incident": {"id": inc.id, "title": inc.title, "category": inc.category, "severity": inc.severity,
                     "stage": inc.stage, "cycle": inc.cycle, "opened_at": _iso(inc.opened_at),
                     "closed_at": _iso(inc.closed_at), "source_url": inc.source_url, "signals": inc.signals},
        "tasks": rows,
        "escalations": [escalation_row(e, by_id, names) for e in escalations],
        "chains": chains,
        "statements": [statement_row(s) for s in statements],
        "expectations": judged,
        "metrics": metrics,
        "timeline": [event_row(ev, inc.opened_at) for ev in events],
    }


def statement_row(st: Statement) -> dict[str, Any]:
    return {"id": st.id, "title": st.title, "status": st.status, "major": st.major, "channel": st.channel,
            "drafted_by": st.drafted_by, "drafted_at": _iso(st.drafted_at), "released_at": _iso(st.released_at),
            "released_by": st.released_by, "next_update": st.next_update, "reviews": st.reviews,
            "body": st.body}


def event_row(ev: Event, opened_at: datetime) -> dict[str, Any]:
    return {"at": _iso(ev.at), "offset_seconds": (ev.at - opened_at).total_seconds(), "actor": ev.actor,
            "kind": ev.kind, "from_state": ev.from_state, "to_state": ev.to_state, "task_id": ev.task_id,
            "data": ev.data}
