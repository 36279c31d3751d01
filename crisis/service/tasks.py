"""Task commands: complete a task, acknowledge its escalation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update

from crisis import textinput
from crisis.engine import policy
from crisis.engine.plan import hold_plan, step_time
from crisis.errors import Conflict, InputError, NotFound
from crisis.principal import Principal
from crisis.service.base import TASK, Rec, ServiceBase, recs
from crisis.severity import Severity
from crisis.store.prepared import Prepared
from crisis.store.records import Escalation, Incident, Task
from crisis.store.tables import ESCALATION as E

_DONE = Prepared(update(TASK).where(TASK.c.id == bindparam("b_id"))
                 .values(status="done", done_at=bindparam("b_at", type_=TASK.c.done_at.type),
                         done_by=bindparam("b_by"), note=bindparam("b_note"), next_escalation_at=None))
_ESCALATION_TASK = Prepared(select(E.c.task_id).where(E.c.id == bindparam("b_id")))
_TASK_LOCKED = Prepared(select(TASK).where(TASK.c.id == bindparam("b_id")).with_for_update())
_FIRED = Prepared(select(E).where(E.c.task_id == bindparam("b_id")).order_by(E.c.level))
_ACK_ESCALATION = Prepared(update(E).where(E.c.id == bindparam("b_id"))
                           .values(acked_at=bindparam("b_at", type_=E.c.acked_at.type), acked_by=bindparam("b_by")))
_ACK_TASK = Prepared(update(TASK).where(TASK.c.id == bindparam("b_id"))
                     .values(escalation_plan=bindparam("b_plan", type_=TASK.c.escalation_plan.type),
                             next_escalation_at=bindparam("b_next", type_=TASK.c.next_escalation_at.type),
                             acked_at=bindparam("b_at", type_=TASK.c.acked_at.type), acked_by=bindparam("b_by")))


class TaskCommands(ServiceBase):
    def complete_task(self, task_id: int, *, principal: Principal, note: str | None = None,
                      expected_version: int | None = None, now: datetime | None = None) -> Task:
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        note = textinput.optional_block(note, "note", max_len=textinput.NOTE_MAX)
        with self._core(who) as (conn, tx):  # a hot path: Core statements, no ORM unit of work
            task, inc = self._task_row_locked(conn, task_id, expected_version)
            policy.enforce(policy.may_complete(who, task_facts(task)))
            task.status, task.done_at, task.done_by, task.note = "done", now, actor, note
            task.next_escalation_at = None
            _DONE.run(conn, {"b_id": task.id, "b_at": now, "b_by": actor, "b_note": note})
            late = (now - task.due_at).total_seconds() if task.due_at else None
            self._event(conn, tx, at=now, actor=actor, kind="task_done", incident_id=inc.id, task_id=task.id,
                        key=task.key, late_seconds=max(0.0, late) if late is not None else None, note=note)
        return task.as_record(Task)

    def acknowledge(self, *, principal: Principal, escalation_id: int | None = None, task_id: int | None = None,
                    now: datetime | None = None) -> Escalation:
        """Acknowledge an escalation: the task's chain holds for the acknowledgement timeout (the playbook's
        `ack_timeout`, default the grade's wait) and, if the task is still open then, resumes at the next level.
        `escalation_id` acknowledges that escalation; `task_id` the task's latest. The acknowledger must have
        been paged, lead, or be on call; a chain already held by a live acknowledgement is a conflict."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        if (escalation_id is None) == (task_id is None):
            raise InputError("give exactly one of an escalation id or a task id")
        with self._core(who) as (conn, tx):  # Core statements on one connection, as the other hot paths
            if escalation_id is not None:
                found = _ESCALATION_TASK.first(conn, {"b_id": escalation_id})
                if found is None:
                    raise NotFound(what="escalation", ref=escalation_id)
                task_id = found[0]
            assert task_id is not None
            _, inc = self._task_row_locked(conn, task_id)
            # the task's own row lock too: the tick advances it under that lock, and the hold below is computed
            # from the level it left
            task = recs(_TASK_LOCKED, conn, {"b_id": task_id})[0]
            fired = recs(_FIRED, conn, {"b_id": task.id})
            policy.enforce(policy.may_ack(who, task_facts(task, fired)))
            esc = next(e for e in fired if e.id == escalation_id) if escalation_id is not None else fired[-1]
            if esc.acked_at is not None:
                raise Conflict(f"escalation #{esc.id} was already acknowledged by {esc.acked_by}")
            until = self._hold(task, inc, now)
            esc.acked_at, esc.acked_by = now, actor
            task.acked_at, task.acked_by = now, actor
            _ACK_ESCALATION.run(conn, {"b_id": esc.id, "b_at": now, "b_by": actor})
            _ACK_TASK.run(conn, {"b_id": task.id, "b_plan": task.escalation_plan, "b_next": task.next_escalation_at,
                                 "b_at": now, "b_by": actor})
            self._event(conn, tx, at=now, actor=actor, kind="escalation_acknowledged", incident_id=inc.id,
                        task_id=task.id, key=task.key, level=esc.level, escalation=esc.id,
                        after_seconds=(now - esc.fired_at).total_seconds(), holds_until=until.isoformat())
            for person in sorted({e.recipient for e in fired} - {actor}):
                self._notify(tx, inc, kind="acknowledged", key=f"ack:{task.id}:{esc.id}:{person}", recipient=person,
                             now=now, task=task, by=actor, escalation=esc.id, holds_until=until.isoformat())
        return esc.as_record(Escalation)

    def _hold(self, task: Task | Rec, inc: Incident | Rec, now: datetime) -> datetime:
        """Hold the task's chain for the acknowledgement timeout: its next step moves to then (never earlier)."""
        assert task.due_at is not None  # it has fired, so it has a deadline
        spec = self.playbooks.get(inc.category).escalation_for(task.stage)
        until = now + spec.ack_timeout_for(Severity(inc.severity))
        plan = hold_plan(task.due_at, self._chain(task.escalation_plan), task.escalation_level, until)
        task.escalation_plan = [list(x) for x in plan]
        task.next_escalation_at = step_time(task.due_at, plan, task.escalation_level)
        assert task.next_escalation_at is not None
        return task.next_escalation_at



def live_ack(task: Task | Rec, fired: list[Escalation] | list[Rec]) -> bool:
    """An acknowledgement still holds the chain: no step has fired since it (a step fired after the hold
    expired means the chain resumed, and a new acknowledgement is due)."""
    return task.acked_at is not None and all(e.fired_at <= task.acked_at for e in fired)


def task_facts(task: Task | Rec, fired: list[Escalation] | list[Rec] | None = None) -> policy.TaskFacts:
    """What the policy rules read about a task (`fired`: its escalations so far)."""
    fired = fired or []
    return policy.TaskFacts(id=task.id or 0, group=task.group, assignee=task.assignee, status=task.status,
                            required=task.required, paged=frozenset(e.recipient for e in fired),
                            acked=live_ack(task, fired))
