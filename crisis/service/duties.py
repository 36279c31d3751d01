"""Duty commands: mark an optional task applicable for this incident (then it behaves as required)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, update

from crisis.engine import policy
from crisis.engine.plan import chase_plan, overdue_by, step_time
from crisis.errors import InputError
from crisis.principal import Principal
from crisis.service.base import TASK, ServiceBase
from crisis.service.tasks import task_facts
from crisis.severity import Severity
from crisis.store.prepared import Prepared
from crisis.store.records import Task

_APPLICABLE = Prepared(update(TASK).where(TASK.c.id == bindparam("b_id"))
                       .values(required=True, escalation_plan=bindparam("b_plan", type_=TASK.c.escalation_plan.type),
                               next_escalation_at=bindparam("b_next", type_=TASK.c.next_escalation_at.type)))


class DutyCommands(ServiceBase):
    def mark_applicable(self, task_id: int, *, reason: str, principal: Principal,
                        now: datetime | None = None) -> Task:
        """An optional task became necessary here (a leak to remedy and notify, the police to call): from now
        on it holds its stage like a required one, and a conditional task that was not chased gets its
        chain (starting at level 1 at once if its deadline has passed)."""
        now = self._now(now)
        who = self._principal(principal, now)
        if not reason or not reason.strip():
            raise InputError("say why the task applies to this incident", field="reason")
        with self._core(who) as (conn, tx):  # Core statements on one connection, as the other hot paths
            task, inc = self._task_row_locked(conn, task_id)
            policy.enforce(policy.may_mark_applicable(who, task_facts(task)))
            if task.required:
                raise InputError(f"task #{task.id} '{task.key}' is already required", field="task")
            task.required = True
            if task.due_at is not None and not task.escalation_plan:
                playbook = self.playbooks.get(inc.category)
                task.escalation_plan = [list(x) for x in chase_plan(
                    playbook.escalation_for(task.stage), Severity(inc.severity), group=task.group,
                    assignee=task.assignee, roster=self.roster, overdue=overdue_by(task.due_at, now))]
                task.next_escalation_at = step_time(task.due_at, task.escalation_plan, 0)
            _APPLICABLE.run(conn, {"b_id": task.id, "b_plan": task.escalation_plan,
                                   "b_next": task.next_escalation_at})
            self._event(conn, tx, at=now, actor=who.person, kind="task_applicable", incident_id=inc.id,
                        task_id=task.id, key=task.key, reason=reason.strip(), chased=bool(task.escalation_plan))
        return task.as_record(Task)
