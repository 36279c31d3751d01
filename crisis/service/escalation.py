"""The escalation clock: fire every due step exactly once (compare-and-set on the task's level).

Each task escalates in its own transaction, and a task whose escalation fails (corrupt plan, deadline
arithmetic out of range) is recorded as faulted and reported to the on-call administrator, while the rest of
the tick goes on: one bad task must never silence every other page.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlmodel import col, func, select

from crisis.durations import format_duration
from crisis.engine.plan import due_steps, step_time
from crisis.service.base import SYSTEM, ServiceBase
from crisis.store.db import read_session
from crisis.store.models import Escalation, Task


class EscalationCommands(ServiceBase):
    def tick(self, now: datetime | None = None) -> list[Escalation]:
        """Fire every escalation step due at `now`, each exactly once (compare-and-set on the level)."""
        now = self._now(now)
        with read_session(self.engine) as s:
            ids = list(s.exec(select(Task.id).where(Task.status == "open", col(Task.acked_at).is_(None),
                                                    col(Task.next_escalation_at).is_not(None),
                                                    col(Task.next_escalation_at) <= now)
                              .order_by(col(Task.next_escalation_at), col(Task.id))).all())
        fired: list[Escalation] = []
        for task_id in ids:
            assert task_id is not None
            try:
                fired.extend(self._escalate(task_id, now))
            except OperationalError:  # the database itself (locked, gone): not this task's fault, retry next tick
                raise
            except Exception as exc:  # one bad task must not stop the others
                self._escalation_fault(task_id, now, exc)
        return fired

    def _escalation_fault(self, task_id: int, now: datetime, exc: Exception) -> None:
        """Record a task whose escalation failed and page the on-call administrator about it.

        The task's chain is stopped (`next_escalation_at` cleared), so the fault is reported once rather than on
        every sweep, and the scheduler does not spin on a deadline it cannot fire; the task stays open and
        overdue for people to handle."""
        error = f"{type(exc).__name__}: {exc}"[:500]
        with self._write() as (s, tx):
            task = s.exec(select(Task).where(Task.id == task_id).with_for_update()).first()
            if task is None or task.status != "open":
                return
            inc = self._incident(s, task.incident_id)
            level = task.escalation_level
            task.next_escalation_at = None
            s.add(task)
            admin = self.roster.on_call_at(now)
            self._event(s, tx, at=now, actor=SYSTEM, kind="escalation_failed", incident_id=inc.id, task_id=task.id,
                        key=task.key, level=level + 1, error=error, reported_to=admin)
            self._notify(
                tx, inc, key=f"fault:{task.id}:{level + 1}", recipient=admin, now=now,
                subject=f"[舆情#{inc.id}] 引擎故障 Engine fault: 任务 #{task.id} 升级失败 escalation failed",
                body=(f"{task.title_zh} / {task.title_en}\n"
                      f"升级链已停止，请人工跟进 The escalation chain of task #{task.id} stopped at level "
                      f"{level + 1}; follow it up by hand.\n错误 Error: {error}"),
                payload={"type": "engine_fault", "task": task.id, "level": level + 1})

    def _escalate(self, task_id: int, now: datetime) -> list[Escalation]:
        out: list[Escalation] = []
        with self._write() as (s, tx):
            task = s.exec(select(Task).where(Task.id == task_id).with_for_update()).first()
            if task is None or task.status != "open" or task.acked_at is not None or task.due_at is None:
                return []
            inc = self._incident(s, task.incident_id)
            plan = [(str(t), int(o)) for t, o in task.escalation_plan]
            level = task.escalation_level
            for step in due_steps(task.due_at, plan, level, now):
                scheduled = step_time(task.due_at, plan, step)
                assert scheduled is not None
                nxt = step_time(task.due_at, plan, step + 1)
                res = s.execute(update(Task).where(col(Task.id) == task.id, col(Task.escalation_level) == step,
                                                   col(Task.status) == "open", col(Task.acked_at).is_(None))
                                .values(escalation_level=step + 1, next_escalation_at=nxt)
                                .execution_options(synchronize_session=False))
                if res.rowcount != 1:  # someone else fired or stopped it: a double wake-up changes nothing
                    break
                target = plan[step][0]
                level_no = step + 1  # people count reminders from 1: level 1 = the assignee at the deadline
                recipient = self.roster.resolve(target, group=task.group, assignee=task.assignee, now=now)
                esc = Escalation(task_id=task.id, incident_id=inc.id, level=level_no, target=target,
                                 recipient=recipient, scheduled_at=scheduled, fired_at=now,
                                 late_seconds=(now - scheduled).total_seconds())
                s.add(esc)
                s.flush()
                out.append(esc)
                overdue = format_duration(now - task.due_at)
                self._event(s, tx, at=now, actor=SYSTEM, kind="escalation_fired", incident_id=inc.id,
                            task_id=task.id, key=task.key, level=level_no, target=target, recipient=recipient,
                            escalation=esc.id, late_seconds=esc.late_seconds)
                self._notify(
                    tx, inc, key=f"esc:{task.id}:{level_no}", recipient=recipient, now=now,
                    subject=f"[舆情#{inc.id} {inc.severity}级 升级{level_no}] 超时 Overdue {overdue}: {task.title_zh}",
                    body=(f"{task.title_zh} / {task.title_en}\n"
                          f"事件 Incident: #{inc.id} {inc.title} ({inc.stage})\n"
                          f"负责人 Assignee: {self.roster.name(task.assignee)}; 截止 Due {task.due_at.isoformat()}\n"
                          f"确认 Acknowledge: crisis ack {esc.id} --by {recipient}"),
                    payload={"type": "escalation", "task": task.id, "level": level_no, "escalation": esc.id})
            s.expire(task)
        return out

    def next_due(self) -> datetime | None:
        """The earliest pending escalation step: when the scheduler should wake next."""
        with read_session(self.engine) as s:
            value = s.exec(select(func.min(Task.next_escalation_at)).where(
                Task.status == "open", col(Task.acked_at).is_(None))).first()
        return value  # min() keeps the column's type, so the value comes back aware UTC

