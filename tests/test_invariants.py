"""Property tests: random sequences of commands against the service under a virtual clock keep the engine's
invariants after every step.

Each example replays a list of actions (open, complete, acknowledge, regrade, stage triggers, clock advances
followed by a tick as the scheduler would) on a fresh SQLite file. Refusals (any CrisisError) are expected
and must change nothing the invariants can see; anything else is a bug. Bounded examples keep it fast;
CRISIS_PROPERTY_EXAMPLES=N runs a longer search.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

from helpers import START, by
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from crisis.clock import VirtualClock
from crisis.engine.fsm import DECISIONS, MACHINE, STAGES
from crisis.errors import CrisisError
from crisis.playbook import PlaybookSet
from crisis.roster import Roster
from crisis.service import CrisisService
from crisis.service.tasks import live_ack
from crisis.severity import Severity
from crisis.store.db import make_engine, read_session
from crisis.store.models import Escalation, Event, OutboxMessage, Task

EXAMPLES = int(os.environ.get("CRISIS_PROPERTY_EXAMPLES", "25"))
CATEGORIES = ("medical_dispute", "public_health")
GRADES = tuple(s.value for s in Severity)

ACTIONS = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(GRADES), st.sampled_from(CATEGORIES)),
    st.tuples(st.just("complete"), st.integers(0, 50)),
    st.tuples(st.just("ack"), st.integers(0, 50), st.sampled_from(("on_call", "leadership", "recipient"))),
    st.tuples(st.just("regrade"), st.integers(0, 5), st.sampled_from(GRADES)),
    st.tuples(st.just("fire"), st.integers(0, 5), st.integers(0, 10), st.sampled_from(DECISIONS)),
    st.tuples(st.just("advance"), st.integers(1, 240)),
)


def pick(items: list, i: int):
    return items[i % len(items)] if items else None


def act(svc: CrisisService, clock: VirtualClock, action: tuple) -> None:
    """One command; refusals are CrisisErrors and expected."""
    boss = by(svc.roster.leadership_head())
    kind = action[0]
    incidents = svc.incidents()
    if kind == "open":
        svc.open_incident(title="网传事件", category=action[2], severity=action[1],
                          principal=by(svc.roster.roles["duty_officer"]))
    elif kind == "complete":
        tasks = [t for i in incidents for t in svc.tasks(i.id) if t.status == "open"]
        if (task := pick(tasks, action[1])) is not None:
            svc.complete_task(task.id, principal=boss)
    elif kind == "ack":
        esc = pick(svc.escalations(), action[1])
        if esc is not None:
            who = {"on_call": svc.roster.on_call_at(clock.now()), "leadership": svc.roster.leadership_head(),
                   "recipient": esc.recipient}[action[2]]
            svc.acknowledge(escalation_id=esc.id, principal=by(who))
    elif kind == "regrade":
        if (inc := pick(incidents, action[1])) is not None:
            svc.regrade(inc.id, severity=action[2], reason="研判调整", principal=boss)
    elif kind == "fire":
        if (inc := pick(incidents, action[1])) is not None and (trigger := pick(MACHINE.allowed(inc.stage),
                                                                                action[2])) is not None:
            svc.fire(inc.id, trigger, principal=boss, decision=action[3] if trigger == "assess" else None,
                     override=True, reason="演练推进")
    elif kind == "advance":
        clock.advance(timedelta(minutes=action[1]))
        svc.tick()  # what the scheduler does when it wakes


def check(svc: CrisisService, now, after_tick: bool) -> None:
    with read_session(svc.engine) as s:
        tasks = list(s.exec(select(Task)).all())
        escs = list(s.exec(select(Escalation).order_by(col(Escalation.id))).all())
        events = list(s.exec(select(Event).order_by(col(Event.id))).all())
        outbox = list(s.exec(select(OutboxMessage)).all())
    assert all(inc.stage in STAGES for inc in svc.incidents())
    for t in tasks:
        assert t.status in ("open", "done", "waived", "cancelled")
        assert (t.done_at is not None) == (t.status == "done")  # never both done and cancelled or waived
        if t.status != "open":
            assert t.next_escalation_at is None  # a closed task pages nobody
    by_task: dict[int, list[Escalation]] = {}
    for e in escs:
        by_task.setdefault(e.task_id, []).append(e)
    for tid, mine in by_task.items():
        levels = [e.level for e in mine]
        assert levels == sorted(set(levels)), f"task {tid}: levels {levels} not strictly increasing"
    for t in tasks:
        fired = by_task.get(t.id or 0, [])
        if t.status == "open" and t.due_at is not None and t.escalation_plan and t.due_at <= now:
            scheduled = t.next_escalation_at is not None  # the next level, or the end of an acknowledgement's hold
            if live_ack(t, fired):
                assert scheduled, f"task {t.id}: an acknowledgement muted the chain instead of holding it"
            else:
                assert scheduled or any(e.acked_at is None for e in fired), f"overdue task {t.id}: nothing pending"
        if after_tick and t.status == "open" and t.next_escalation_at is not None:
            assert t.next_escalation_at > now, f"task {t.id}: a due step was left unfired by the tick"
    assert [e.at for e in events] == sorted(e.at for e in events), "audit times went backwards"
    assert not [e for e in events if e.kind == "escalation_failed"], "the engine faulted on a valid playbook"
    pages = Counter((m.payload["task"], m.payload["level"], m.channel) for m in outbox
                    if m.payload.get("type") == "escalation")
    assert all(n == 1 for n in pages.values()), "a (task, level) was notified twice"
    assert {(tid, level) for tid, level, _ in pages} == {(e.task_id, e.level) for e in escs}  # each was notified


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTIONS, min_size=1, max_size=25))
def test_random_command_sequences_keep_the_invariants(actions, playbooks: PlaybookSet, roster: Roster,
                                                      migrated_db: Path):
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(migrated_db, Path(tmp) / "crisis.db")
        engine = make_engine(f"sqlite:///{Path(tmp) / 'crisis.db'}")
        try:
            clock = VirtualClock(START)
            svc = CrisisService(engine, playbooks, roster, clock)
            svc.open_incident(title="网传事件", category="medical_dispute", severity="II",
                              principal=by(roster.roles["duty_officer"]))
            for action in actions:
                with contextlib.suppress(CrisisError):  # a refusal must change nothing the invariants see
                    act(svc, clock, action)
                check(svc, clock.now(), after_tick=action[0] == "advance")
            event(f"escalations fired: {min(len(svc.escalations()), 3)}+")
            event(f"acknowledgements: {sum(1 for e in svc.escalations() if e.acked_at)}")
        finally:
            engine.dispose()
