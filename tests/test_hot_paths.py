"""The write hot paths (open, fire, complete) run as SQLAlchemy Core statements: what a command returns is the
row it stored, and its statements do not grow with the rows it writes (one statement per kind of row)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from helpers import CATEGORY, by, leader, non_leader, open_incident, stage_tasks
from sqlalchemy import event

from crisis.store import records
from crisis.store.records import as_dict


def test_open_fire_and_complete_return_the_rows_they_stored(svc, roster, clock):
    inc = svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)), severity="II",
                            signals={"reposts": 3})
    assert isinstance(inc, records.Incident)  # a record: no model class, no mapper set-up on the write path
    assert as_dict(inc) == svc.incident(inc.id).model_dump()
    assert (inc.stage, inc.version, inc.cycle_anchor) == ("monitoring", 0, inc.opened_at)
    clock.advance(timedelta(minutes=5))
    moved = svc.fire(inc.id, "report", principal=by(leader(roster)), override=True, reason="r", severity="I")
    assert as_dict(moved) == svc.incident(inc.id).model_dump()
    assert (moved.stage, moved.severity, moved.version) == ("reported", "I", 1)
    task = stage_tasks(svc, inc.id)[0]
    clock.advance(timedelta(minutes=1))
    done = svc.complete_task(task.id, principal=by(leader(roster)), note="n")
    assert isinstance(done, records.Task)
    assert as_dict(done) == next(t for t in svc.tasks(inc.id) if t.id == task.id).model_dump()
    assert (done.status, done.done_at, done.note, done.next_escalation_at) == ("done", clock.now(), "n", None)


def test_a_transition_writes_each_kind_of_row_with_one_statement(svc, engine, roster):
    iid = open_incident(svc)
    waived = [t for t in stage_tasks(svc, iid) if t.status == "open"]
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, stmt, *_: sent.append(" ".join(stmt.split()[:3])))
    svc.fire(iid, "report", principal=by(leader(roster)), override=True, reason="r")
    fired = list(sent)  # the fire's statements only
    entered = stage_tasks(svc, iid, "reported")
    assert len(waived) >= 2 and len(entered) >= 2  # several rows of each kind, so one statement each means something
    kinds = Counter(s for s in fired if s.startswith(("INSERT", "UPDATE")))
    assert kinds == {"INSERT INTO task": 1, "INSERT INTO event": 1, "INSERT INTO outboxmessage": 1,
                     "UPDATE task SET": 1, "UPDATE incident SET": 1}
    assert len(fired) <= 8  # BEGIN, one read, five writes (the commit is not a statement)
