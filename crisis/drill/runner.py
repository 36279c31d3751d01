"""Replay a scenario through the real engine under a virtual clock.

The clock jumps from event to event: the next scripted step or the next escalation due
in the database, whichever comes first. With `speed` N the replay also sleeps so that
virtual time runs N times faster than real time. Responder actions that the engine
refuses (an illegal trigger, a stage left with tasks open) are recorded in the timeline
as `drill_action_rejected` and the drill goes on: that is a finding, not a crash.
"""

from __future__ import annotations

import gc
import heapq
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from crisis.clock import VirtualClock
from crisis.drill.scenario import MAIN, IncidentSpec, LoadedScenario, Step
from crisis.errors import CrisisError, InputError
from crisis.notify.channels import Delivery, MemoryChannel
from crisis.notify.dispatch import Dispatcher
from crisis.notify.messages import Renderer
from crisis.playbook import PlaybookSet
from crisis.principal import Principal
from crisis.roster import Roster
from crisis.rota import Shift
from crisis.scorecard import build
from crisis.service import CrisisService
from crisis.store.migrate import create_db

DRILL_CHANNEL = "drill"


class _DrillChannel(MemoryChannel):
    """Where a drill's notifications go: a drill records each one's key, recipient, subject and time, never
    its chat Markdown, so (like the file and log channels) it asks the dispatcher to render none."""

    plain = True

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.of_incident: dict[int | None, list[Delivery]] = defaultdict(list)  # each incident's, kept in order

    def deliver(self, message: Delivery) -> str:
        said = super().deliver(message)
        if said == "kept":
            self.of_incident[message.incident_id].append(message)
        return said


@dataclass
class DrillResult:
    incident_id: int
    scorecard: dict[str, Any]
    notifications: list[dict[str, Any]] = field(default_factory=list)
    service: CrisisService | None = None
    steps_applied: int = 0
    steps_rejected: int = 0
    wakeups: int = 0
    name: str = MAIN  # the incident's name in its scenario
    loaded: LoadedScenario | None = None


def run_drill(loaded: LoadedScenario, *, engine: Engine, playbooks: PlaybookSet, roster: Roster,
              speed: float | None = None, sleep: Callable[[float], None] = time.sleep,
              on_event: Callable[[datetime, str], None] | None = None) -> DrillResult:
    """Run the whole scenario; `speed=None` is instant (no sleeping)."""
    return run_drills([(loaded, timedelta(0))], engine=engine, playbooks=playbooks, roster=roster, speed=speed,
                      sleep=sleep, on_event=on_event)[0]


@dataclass
class _Track:
    """One incident of a scenario: opened at `start`, its steps timed from the scenario's `origin`."""

    loaded: LoadedScenario
    name: str
    spec: IncidentSpec
    origin: datetime
    start: datetime
    end: datetime
    incident_id: int = 0
    pos: int = 0
    steps: list[tuple[int, Step]] = field(default_factory=list)
    result: DrillResult | None = None

    def next_at(self) -> datetime | None:
        return self.origin + self.steps[self.pos][1].at if self.pos < len(self.steps) else None


def _tracks(loaded: LoadedScenario, offset: timedelta) -> list[_Track]:
    sc = loaded.scenario
    origin = sc.start + offset
    return [_Track(loaded, name, spec, origin, origin + spec.at, origin + sc.duration,
                   steps=sorted(sc.steps_of(name), key=lambda p: (p[1].at, p[0])))
            for name, spec in sc.specs().items()]


def arrange_rota(svc: CrisisService, scenarios: list[LoadedScenario]) -> None:
    """The scenarios' own on-call windows (e.g. tonight's 总值班) are stored as imported shifts before anything
    happens: like any stored shift they beat the roster's rota and windows while they cover a moment. The duty
    officer arranges them, as in the hospital."""
    shifts = [Shift(oc.person, oc.start, oc.until, source="import")
              for ls in scenarios for oc in ls.scenario.on_call or []]
    if shifts:
        svc.add_shifts(shifts, principal=_as(svc.roster.roles.get("duty_officer", shifts[0].person)),
                       note="drill rota")


def run_drills(tracks: list[tuple[LoadedScenario, timedelta]], *, engine: Engine, playbooks: PlaybookSet,
               roster: Roster, speed: float | None = None, sleep: Callable[[float], None] = time.sleep,
               on_event: Callable[[datetime, str], None] | None = None,
               on_finish: Callable[[DrillResult], None] | None = None, score: bool = True) -> list[DrillResult]:
    """Run several scenarios at once (each shifted by its offset), every incident of each, on one engine and
    one virtual clock: a surge drill with concurrent incidents competing for the same people. One result per
    incident, in scenario order. Each incident is scored when its own scenario ends (`on_finish` is called
    then, e.g. to write its reports), so a longer scenario replayed with it does not change its record.
    `score=False` leaves each result's `scorecard` empty: `on_finish` scores the incident itself (the CLI, in
    its report worker)."""
    if not tracks:
        raise InputError("no scenario to run")
    for loaded, _ in tracks:
        loaded.check_against(playbooks, roster)
    create_db(engine)  # the drill makes its own database
    runs = [t for loaded, offset in tracks for t in _tracks(loaded, offset)]
    clock = VirtualClock(min(t.start for t in runs))
    svc = CrisisService(engine, playbooks, roster, clock, channels=(DRILL_CHANNEL,))
    channel = _DrillChannel(DRILL_CHANNEL)  # drills never reach real channels; the CLI writes the drill's file
    delivery = Dispatcher(engine, {DRILL_CHANNEL: channel}, Renderer(roster, svc.routing.tz), clock,
                          routing=svc.routing)
    arrange_rota(svc, [ls for ls, _ in tracks])
    end = max(t.end for t in runs)
    wakeups = 0
    agenda = _Agenda(runs)
    due = svc.next_due()
    while agenda.ends:
        candidates = [x for x in (agenda.next_event(), agenda.ends[0][0], due) if x is not None and x <= end]
        when = max(min(candidates), clock.now())
        if speed:
            sleep((when - clock.now()).total_seconds() / speed)
        clock.advance_to(when)
        busy = False
        for t in agenda.due(when):  # only the incidents with an opening or a step now, in scenario order
            busy |= _open_due(svc, t, when)
            busy |= _steps_due(svc, t, when, clock, on_event)
            agenda.reschedule(t)
        if busy and (due is None or due > when):  # a step may have brought an escalation step to now (a regrade)
            due = svc.next_due()
        if due is not None and due <= when:  # else `tick` would fire nothing (a third of a surge's wakes)
            busy |= _tick(svc, on_event)
            due = svc.next_due()
        wakeups += 1
        if busy:  # only a step or an escalation queues notifications
            delivery.drain_inline()  # the drill channel answers at once: no worker thread to wait for
        for t in agenda.ended(clock.now()):
            _finish(svc, t, channel, wakeups, on_finish, score)
    return [t.result for t in runs if t.result is not None]


@contextmanager
def rarer_collections(young: int = 10_000) -> Iterator[None]:
    """Python's cyclic collector less often while a replay runs: by default it scans the youngest objects every
    700 net allocations, and the service's statements allocate so many that a 100-incident surge spent 0.12 s
    in 164 collections; with 10,000 it spends 0.03 s in 8 (its memory peak 134 -> 139 MB). Restored after."""
    before = gc.get_threshold()
    gc.set_threshold(max(young, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _tick(svc: CrisisService, on_event: Callable[[datetime, str], None] | None) -> bool:
    """Fire the escalation steps due; whether any fired."""
    fired = svc.tick()
    if on_event:
        for esc in fired:
            on_event(esc.fired_at, f"#{esc.incident_id} escalation L{esc.level} → {esc.recipient} "
                                   f"(task #{esc.task_id})")
    return bool(fired)


class _Agenda:
    """When each incident next needs the runner (its opening, then each scripted step) and when each ends, as
    heaps: a wake costs the incidents due then, not a scan of every incident (a 100-incident surge has
    ~1,700 wakes). Incidents due at the same moment come out in scenario order, as a scan would take them."""

    def __init__(self, runs: list[_Track]) -> None:
        self.runs = runs
        self.events = [(t.start, i) for i, t in enumerate(runs)]
        self.ends = [(t.end, i) for i, t in enumerate(runs)]
        heapq.heapify(self.events)
        heapq.heapify(self.ends)
        self._index = {id(t): i for i, t in enumerate(runs)}

    def next_event(self) -> datetime | None:
        return self.events[0][0] if self.events else None

    def due(self, when: datetime) -> list[_Track]:
        found = []
        while self.events and self.events[0][0] <= when:
            found.append(heapq.heappop(self.events)[1])
        return [self.runs[i] for i in sorted(found)]

    def reschedule(self, t: _Track) -> None:
        at = t.start if t.result is None else t.next_at()
        if at is not None:
            heapq.heappush(self.events, (at, self._index[id(t)]))

    def ended(self, now: datetime) -> list[_Track]:
        found = []
        while self.ends and self.ends[0][0] <= now:
            found.append(heapq.heappop(self.ends)[1])
        return [self.runs[i] for i in sorted(found)]


def _finish(svc: CrisisService, t: _Track, channel: _DrillChannel, wakeups: int,
            on_finish: Callable[[DrillResult], None] | None, score: bool = True) -> None:
    """Score one incident at its scenario's end (or leave that to `on_finish`)."""
    assert t.result is not None
    t.result.wakeups = wakeups
    t.result.notifications = [
        {"key": m.dedupe_key, "to": m.recipient, "subject": m.subject, "at": m.created_at.isoformat()}
        for m in channel.of_incident.get(t.incident_id, ())]  # not a scan of the whole drill's, per incident
    if score:
        t.result.scorecard = build(svc, t.incident_id, expectations=t.loaded.scenario.expectations(t.name),
                                   finished=True)
    if on_finish:
        on_finish(t.result)


def _open_due(svc: CrisisService, t: _Track, when: datetime) -> bool:
    if t.result is not None or t.start > when:
        return False
    inc = t.spec
    opened = svc.open_incident(title=inc.title, category=inc.category, source_url=inc.source_url,
                               signals=dict(inc.signals), severity=inc.severity, principal=_as(inc.opened_by))
    assert opened.id is not None
    t.incident_id = opened.id
    t.result = DrillResult(incident_id=opened.id, scorecard={}, service=svc, name=t.name, loaded=t.loaded)
    return True


def _steps_due(svc: CrisisService, t: _Track, when: datetime, clock: VirtualClock,
               on_event: Callable[[datetime, str], None] | None) -> bool:
    busy = False
    while t.result is not None and (at := t.next_at()) is not None and at <= when:
        index, step = t.steps[t.pos]
        t.pos += 1
        busy = True
        ok = _apply(svc, t.incident_id, step, index, t.loaded)
        t.result.steps_applied += ok
        t.result.steps_rejected += not ok
        if on_event:
            what = step.inject or step.do
            on_event(clock.now(), f"#{t.incident_id} {'inject' if step.inject else step.by}: {what}"
                     + (f" {step.task}" if step.task else "") + ("" if ok else "  [rejected]"))
    return busy


def _apply(svc: CrisisService, incident_id: int, step: Step, index: int, loaded: LoadedScenario) -> bool:
    """Apply one step; a refused responder action is recorded, not raised."""
    if step.inject is not None:
        svc.drill_inject(incident_id, step.text or step.inject, signals=dict(step.signals or {}),
                         signals_note=step.text, inject=step.inject, step=index)
        return True
    assert step.do is not None and step.by is not None
    try:
        _act(svc, incident_id, step)
    except CrisisError as exc:
        svc.note(incident_id, "drill_action_rejected", str(exc), principal=_as(step.by), action=step.do, step=index,
                 line=loaded.doc.line_of(("steps", index)))
        return False
    return True


def _as(person: str) -> Principal:
    """Scripted responders act as themselves, authenticated by the drill (their rights still apply)."""
    return Principal(person=person, auth="drill")


def _act(svc: CrisisService, incident_id: int, step: Step) -> None:
    assert step.by is not None and step.do is not None
    by = _as(step.by)
    if step.do == "complete":
        assert step.task
        svc.complete_task(svc.task_id(incident_id, step.task), principal=by, note=step.note)
    elif step.do == "ack":
        assert step.task
        svc.acknowledge(task_id=svc.task_id(incident_id, step.task), principal=by)
    elif step.do == "signals":
        svc.update_signals(incident_id, dict(step.signals or {}), principal=by, note=step.note)
    elif step.do == "statement":
        assert step.title and step.body
        st = svc.draft_statement(incident_id, title=step.title, body=step.body, principal=by, major=step.major,
                                 next_update=step.next_update)
        assert st.id is not None
        for level, reviewer in enumerate(step.reviewers, 1):
            rejects = level == step.reject_at
            st = svc.review_statement(st.id, principal=_as(reviewer), approve=not rejects,
                                      comment=step.comment if rejects else None)
            if rejects:
                return  # sent back with the reviewer's comment: nothing is released
        svc.release_statement(st.id, principal=by)
    elif step.do == "regrade":
        assert step.severity and step.reason
        svc.regrade(incident_id, severity=step.severity, reason=step.reason, principal=by)
    elif step.do == "applicable":
        assert step.task and step.reason
        svc.mark_applicable(svc.task_id(incident_id, step.task), reason=step.reason, principal=by)
    else:
        svc.fire(incident_id, step.do, principal=by, decision=step.decision, severity=step.severity,
                 override=step.override, reason=step.reason, note=step.note)


def drill_db_url(store_dir: Path, run_id: str) -> str:
    path = store_dir / "drills" / f"{run_id}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"
