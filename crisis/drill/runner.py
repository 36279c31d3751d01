"""Replay a scenario through the real engine under a virtual clock.

The clock jumps from event to event: the next scripted step or the next escalation due
in the database, whichever comes first. With `speed` N the replay also sleeps so that
virtual time runs N times faster than real time. Responder actions that the engine
refuses (an illegal trigger, a stage left with tasks open) are recorded in the timeline
as `drill_action_rejected` and the drill goes on: that is a finding, not a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from crisis.clock import VirtualClock
from crisis.drill.scenario import LoadedScenario, Step
from crisis.errors import CrisisError
from crisis.notify.channels import MemoryChannel
from crisis.notify.dispatch import dispatch
from crisis.playbook import PlaybookSet
from crisis.roster import Roster
from crisis.scorecard import build
from crisis.service import CrisisService
from crisis.store.db import init_db

DRILL_CHANNEL = "drill"


@dataclass
class DrillResult:
    incident_id: int
    scorecard: dict[str, Any]
    notifications: list[dict[str, Any]] = field(default_factory=list)
    steps_applied: int = 0
    steps_rejected: int = 0
    wakeups: int = 0


def run_drill(loaded: LoadedScenario, *, engine: Engine, playbooks: PlaybookSet, roster: Roster,
              speed: float | None = None, sleep: Callable[[float], None] = time.sleep,
              on_event: Callable[[datetime, str], None] | None = None) -> DrillResult:
    """Run the whole scenario; `speed=None` is instant (no sleeping)."""
    sc = loaded.scenario
    loaded.check_against(playbooks, roster)
    init_db(engine)
    clock = VirtualClock(sc.start)
    svc = CrisisService(engine, playbooks, roster, clock, channels=(DRILL_CHANNEL,))
    channel = MemoryChannel(DRILL_CHANNEL)
    inc = svc.open_incident(title=sc.incident.title, category=sc.incident.category,
                            source_url=sc.incident.source_url, signals=dict(sc.incident.signals),
                            severity=sc.incident.severity, actor=sc.incident.opened_by)
    assert inc.id is not None
    result = DrillResult(incident_id=inc.id, scorecard={})
    end = sc.start + sc.duration
    steps = sorted(enumerate(sc.steps), key=lambda p: (p[1].at, p[0]))
    pos = 0
    while True:
        candidates = [t for t in (
            sc.start + steps[pos][1].at if pos < len(steps) else None,
            svc.next_due(),
        ) if t is not None and t <= end]
        if not candidates:
            break
        when = max(min(candidates), clock.now())
        if speed:
            sleep((when - clock.now()).total_seconds() / speed)
        clock.advance_to(when)
        while pos < len(steps) and sc.start + steps[pos][1].at <= when:
            index, step = steps[pos]
            pos += 1
            if _apply(svc, inc.id, step, index, loaded):
                result.steps_applied += 1
            else:
                result.steps_rejected += 1
        for esc in svc.tick():
            if on_event:
                on_event(esc.fired_at, f"escalation L{esc.level} → {esc.recipient} (task #{esc.task_id})")
        result.wakeups += 1
        dispatch(engine, {DRILL_CHANNEL: channel}, clock.now())
    clock.advance_to(end)
    result.notifications = [
        {"key": m.dedupe_key, "to": m.recipient, "subject": m.subject, "at": m.created_at.isoformat()}
        for m in channel.delivered]
    result.scorecard = build(svc, inc.id, expectations=sc.expectations(), finished=True)
    return result


def _apply(svc: CrisisService, incident_id: int, step: Step, index: int, loaded: LoadedScenario) -> bool:
    """Apply one step; a refused responder action is recorded, not raised."""
    if step.inject is not None:
        if step.signals:
            svc.update_signals(incident_id, dict(step.signals), actor="drill", note=step.text)
        svc.note(incident_id, "inject", step.text or step.inject, actor="drill", inject=step.inject, step=index)
        return True
    assert step.do is not None and step.by is not None
    try:
        _act(svc, incident_id, step)
    except CrisisError as exc:
        svc.note(incident_id, "drill_action_rejected", str(exc), actor=step.by, action=step.do, step=index,
                 line=loaded.doc.line_of(("steps", index)))
        return False
    return True


def _act(svc: CrisisService, incident_id: int, step: Step) -> None:
    by = step.by
    assert by is not None and step.do is not None
    if step.do == "complete":
        assert step.task
        svc.complete_task(svc.find_task(incident_id, step.task).id or 0, actor=by, note=step.note)
    elif step.do == "ack":
        assert step.task
        svc.acknowledge(task_id=svc.find_task(incident_id, step.task).id, actor=by)
    elif step.do == "signals":
        svc.update_signals(incident_id, dict(step.signals or {}), actor=by, note=step.note)
    elif step.do == "statement":
        assert step.title and step.body
        st = svc.draft_statement(incident_id, title=step.title, body=step.body, actor=by, major=step.major,
                                 next_update=step.next_update)
        assert st.id is not None
        for reviewer in step.reviewers:
            st = svc.review_statement(st.id, actor=reviewer, approve=True)
        svc.release_statement(st.id, actor=by)
    else:
        svc.fire(incident_id, step.do, actor=by, decision=step.decision, severity=step.severity,
                 override=step.override, reason=step.reason, note=step.note)


def drill_db_url(store_dir: Path, run_id: str) -> str:
    path = store_dir / "drills" / f"{run_id}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
