"""Task commands: complete a task, acknowledge its escalation."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from crisis import textinput
from crisis.engine import policy
from crisis.errors import InputError, NotFound
from crisis.principal import Principal
from crisis.service.base import ServiceBase
from crisis.store.models import Escalation, Task


class TaskCommands(ServiceBase):
    def complete_task(self, task_id: int, *, principal: Principal, note: str | None = None,
                      now: datetime | None = None) -> Task:
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        note = textinput.optional_block(note, "note", max_len=textinput.NOTE_MAX)
        with self._write(who) as (s, tx):
            task, inc = self._task_locked(s, task_id)
            policy.enforce(policy.may_complete(who, task_facts(task)))
            task.status, task.done_at, task.done_by, task.note = "done", now, actor, note
            task.next_escalation_at = None
            s.add(task)
            late = (now - task.due_at).total_seconds() if task.due_at else None
            self._event(s, tx, at=now, actor=actor, kind="task_done", incident_id=inc.id, task_id=task.id,
                        key=task.key, late_seconds=max(0.0, late) if late is not None else None, note=note)
        return task

    def acknowledge(self, *, principal: Principal, escalation_id: int | None = None, task_id: int | None = None,
                    now: datetime | None = None) -> Escalation:
        """Stop a task's escalation chain. The acknowledger must have been paged, lead, or be on call."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        if (escalation_id is None) == (task_id is None):
            raise InputError("give exactly one of an escalation id or a task id")
        with self._write(who) as (s, tx):
            if escalation_id is not None:
                esc = s.get(Escalation, escalation_id)
                if esc is None:
                    raise NotFound(f"no escalation #{escalation_id}")
                task_id = esc.task_id
            assert task_id is not None
            task, inc = self._task_locked(s, task_id)
            fired = list(s.exec(select(Escalation).where(Escalation.task_id == task.id)
                                .order_by(col(Escalation.level))).all())
            paged = {e.recipient for e in fired}
            policy.enforce(policy.may_ack(who, task_facts(task, paged)))
            latest = fired[-1]
            latest.acked_at, latest.acked_by = now, actor
            task.acked_at, task.acked_by, task.next_escalation_at = now, actor, None
            s.add(latest)
            s.add(task)
            self._event(s, tx, at=now, actor=actor, kind="escalation_acknowledged", incident_id=inc.id,
                        task_id=task.id, key=task.key, level=latest.level, escalation=latest.id,
                        after_seconds=(now - latest.fired_at).total_seconds())
            for person in sorted(paged - {actor}):
                self._notify(tx, inc, key=f"ack:{task.id}:{person}", recipient=person, now=now,
                             subject=f"[舆情#{inc.id}] 已确认 Acknowledged: {task.title_zh}",
                             body=f"{self.roster.name(actor)} acknowledged the escalation of '{task.title_en}'.",
                             payload={"type": "acknowledged", "task": task.id})
        return latest



def task_facts(task: Task, paged: set[str] | None = None) -> policy.TaskFacts:
    """What the policy rules read about a task."""
    return policy.TaskFacts(id=task.id or 0, group=task.group, assignee=task.assignee, status=task.status,
                            required=task.required, paged=frozenset(paged or ()), acked=task.acked_at is not None)
