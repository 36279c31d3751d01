"""The escalation clock: fire every due step exactly once (compare-and-set on the task's level).

An acknowledgement does not stop a chain, it holds it: the acknowledgement moves the task's next step to the
end of the hold (see TaskCommands.acknowledge), so the clock needs no special case for acknowledged tasks.

Due steps fire in batches: one short write transaction per batch reads the due tasks with their incidents,
advances them all with one guarded `UPDATE … RETURNING` (a task whose level or next step changed since the
read is not returned, and nothing is written for it: the compare-and-set stays the exactly-once guarantee),
inserts the batch's escalations, audit events and outbox rows with one statement each, and commits. Each
escalation's fire time is its own batch's time, taken once the write lock is held (not the tick's start), and
`on_batch` runs after every commit, so delivery starts while a long catch-up goes on.

A task whose escalation fails (corrupt plan, deadline arithmetic out of range, an unresolvable chain step) is
recorded as faulted and reported to the on-call administrator, while the rest of the batch goes on: one bad
task must never silence every other page. A database error other than OperationalError re-runs the batch one
task per transaction, so the task that caused it is the only one faulted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Integer, bindparam, func, literal_column, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from crisis.engine.plan import due_steps, step_time
from crisis.notify.outbox import messages
from crisis.rota import BACKUP_TARGET, OnCall, on_call
from crisis.service.base import SYSTEM, Rec, ServiceBase, _Tx, recs
from crisis.store.prepared import InsertMany, Prepared, write
from crisis.store.records import Escalation as Fired  # one record type for an escalation row, read or fired
from crisis.store.tables import ESCALATION as E
from crisis.store.tables import INCIDENT as I
from crisis.store.tables import TASK as T
from crisis.store.types import UTCDateTime

BATCH = 500  # due tasks per transaction: the first pages still go out within a second of a restart (measured)
# `status = 'open'` written into the SQL, not bound: the escalation clock reads the partial index ix_task_next_step
# (WHERE status = 'open' …), and SQLite can only prove a bound value matches an index's WHERE by preparing the
# statement again for each new binding (tick's due-task read: ~19 µs instead of ~5 on a drill's end state).
_OPEN = literal_column("'open'")
# (IS NOT NULL changes nothing for MIN(): it lets the planner read the partial index ix_task_next_step)
_NEXT_DUE = Prepared(select(func.min(T.c.next_escalation_at))
                     .where(T.c.status == _OPEN, T.c.next_escalation_at.is_not(None)))
_DUE_COLUMNS = (T.c.id, T.c.incident_id, T.c.key, T.c.group, T.c.title_zh, T.c.title_en, T.c.assignee, T.c.due_at,
                T.c.escalation_plan, T.c.escalation_level, T.c.next_escalation_at,
                I.c.title.label("inc_title"), I.c.severity, I.c.stage)


_ADVANCE = Prepared(update(T)
                    .where(T.c.id == bindparam("_id"), T.c.status == _OPEN,
                           T.c.escalation_level == bindparam("_level"),
                           T.c.next_escalation_at == bindparam("_next", type_=UTCDateTime()))
                    .values(escalation_level=bindparam("_new_level"),
                            next_escalation_at=bindparam("_new_next", type_=UTCDateTime())))
# the due tasks with their incidents, next step first (PostgreSQL: concurrent tickers take disjoint tasks)
_DUE = (select(*_DUE_COLUMNS).join(I, I.c.id == T.c.incident_id)
        .where(T.c.status == _OPEN, T.c.next_escalation_at.is_not(None),
               T.c.next_escalation_at <= bindparam("b_now", type_=UTCDateTime()))
        .order_by(T.c.next_escalation_at, T.c.id).limit(bindparam("b_limit", type_=Integer))
        .with_for_update(skip_locked=True, of=T))
_DUE_ALL, _DUE_ONE = Prepared(_DUE), Prepared(_DUE.where(T.c.id == bindparam("b_only")))
_ESC_COLUMNS = ("task_id", "incident_id", "level", "target", "recipient", "scheduled_at", "fired_at", "late_seconds",
                "acked_at", "acked_by")
_INSERT_ESCALATIONS = InsertMany(E, _ESC_COLUMNS, ("id", "task_id", "level"))


def _bucket(n: int) -> int:
    """The IN-list size for `n` ids: the next power of two, so a few prebuilt statements serve every batch."""
    return 1 << max(0, n - 1).bit_length()


@cache
def _paged(size: int) -> Prepared:
    """Who the tasks' earlier escalations paged, in level order: `size` ids (the last repeated to fill it)."""
    ids = [bindparam(f"t{i}", type_=E.c.task_id.type) for i in range(size)]
    return Prepared(select(E.c.task_id, E.c.recipient).where(E.c.task_id.in_(ids)).order_by(E.c.task_id, E.c.level))


class _CasLost(Exception):
    """A batch's compare-and-set advanced fewer tasks than it read (someone else changed one): re-run it task by
    task."""


@dataclass(frozen=True)
class _Step:
    """One escalation step to fire, decided from a due task's row (pure: no database)."""

    row: Rec
    level: int  # 0-based step index (the level before firing)
    target: str
    recipient: str
    scheduled: datetime


class EscalationCommands(ServiceBase):
    def tick(self, now: datetime | None = None, *,
             on_batch: Callable[[list[Fired]], None] | None = None) -> list[Fired]:
        """Fire every escalation step due, each exactly once, batch by batch until none is due.

        With `now` given (drills, tests) every batch fires at that instant; otherwise each batch reads the clock
        when its transaction starts, so its fire time is its own commit time and steps that come due during a
        long catch-up are fired by it too."""
        fixed = self._now(now) if now is not None else None
        fired: list[Fired] = []
        while True:
            batch, selected = self._fire_batch(fixed)
            fired.extend(batch)
            if batch and on_batch is not None:
                on_batch(batch)
            if selected < BATCH:
                return fired

    def _fire_batch(self, fixed: datetime | None, only: int | None = None) -> tuple[list[Fired], int]:
        """One transaction: fire the due steps of up to BATCH tasks (or of task `only`). Returns the escalations
        fired and how many due tasks were selected (fewer than BATCH: nothing more is due)."""
        tx = _Tx()
        faults: list[tuple[int, Exception]] = []
        rows: Sequence[Rec] = []
        try:
            with write(self.engine) as conn:  # SQLite: BEGIN IMMEDIATE, so `now` is read holding the write lock
                now = fixed or self.clock.now()
                rows = self._due(conn, now, only)
                steps: list[_Step] = []
                duty = self._on_call(conn, now) if rows else None
                for row in rows:
                    try:
                        steps.extend(self._steps(row, now, duty))
                    except Exception as exc:  # one bad task must not stop the others
                        faults.append((row.id, exc))
                fired = self._advance_and_record(conn, tx, steps, now)
        except OperationalError:  # the database itself (locked, gone): not a task's fault, retry next tick
            raise
        except _CasLost:
            return self._one_by_one([r.id for r in rows], fixed)
        except DBAPIError:
            if only is not None or not rows:
                raise
            return self._one_by_one([r.id for r in rows], fixed)
        self._log_committed(tx)
        for task_id, exc in faults:
            self._escalation_fault(task_id, now, exc)
        return fired, len(rows)

    def _one_by_one(self, task_ids: list[int], fixed: datetime | None) -> tuple[list[Fired], int]:
        """A batch hit a database error: fire its tasks one per transaction; fault only the one that fails."""
        fired: list[Fired] = []
        for task_id in task_ids:
            try:
                fired.extend(self._fire_batch(fixed, only=task_id)[0])
            except OperationalError:
                raise
            except Exception as exc:
                self._escalation_fault(task_id, fixed or self.clock.now(), exc)
        return fired, len(task_ids)

    def _due(self, conn: Connection, now: datetime, only: int | None) -> Sequence[Rec]:
        if only is None:
            return recs(_DUE_ALL, conn, {"b_now": now, "b_limit": BATCH})
        return recs(_DUE_ONE, conn, {"b_now": now, "b_only": only, "b_limit": BATCH})

    def _recipient(self, target: str, row: Rec, duty: OnCall | None) -> str:
        """The person a step pages; the on-call pair comes from the rota and its stored shifts."""
        if target == "on_call" and duty is not None:
            return duty.primary
        if target == BACKUP_TARGET and duty is not None:
            return duty.backup or duty.primary
        person = self.roster.fixed_recipient(target, group=row.group, assignee=row.assignee)
        if person is None:
            raise ValueError(f"escalation target {target!r} names nobody")
        return person

    def _steps(self, row: Rec, now: datetime, duty: OnCall | None = None) -> list[_Step]:
        """The steps of one due task that fire at `now`, with their recipients (`duty`: who is on call, read
        with the batch; without it, the rota or roster alone decide)."""
        if duty is None:
            duty = on_call(now, self.routing.tz, rotation=self.roster.rota, shifts=[],
                           roster_windows=self.roster.on_call_windows())
        if row.due_at is None:
            raise ValueError("task has a pending escalation step but no deadline")
        plan = self._chain(row.escalation_plan)
        out = []
        for step in due_steps(row.due_at, plan, row.escalation_level, now):
            scheduled = step_time(row.due_at, plan, step)
            assert scheduled is not None
            target = plan[step][0]
            recipient = self._recipient(target, row, duty)
            out.append(_Step(row, step, target, recipient, scheduled))
        if not out:
            raise ValueError(f"escalation step {row.escalation_level + 1} is pending but not due by its plan")
        return out

    def _advance_and_record(self, conn: Connection, tx: _Tx, steps: list[_Step], now: datetime) -> list[Fired]:
        if not steps:
            return []
        last: dict[int, _Step] = {}
        for st in steps:
            last[st.row.id] = st  # steps are in level order per task
        advanced = self._guarded_update(conn, last)
        steps = [st for st in steps if st.row.id in advanced]  # lost the compare-and-set: someone else fired it
        if not steps:
            return []
        rows = [{"task_id": st.row.id, "incident_id": st.row.incident_id, "level": st.level + 1, "target": st.target,
                 "recipient": st.recipient, "scheduled_at": st.scheduled, "fired_at": now,
                 "late_seconds": (now - st.scheduled).total_seconds(), "acked_at": None, "acked_by": None}
                for st in steps]
        paged: dict[int, list[str]] = {}
        ids = sorted(advanced)
        size = _bucket(len(ids))
        for task_id, person in _paged(size).rows(conn, {f"t{i}": ids[min(i, len(ids) - 1)] for i in range(size)}):
            paged.setdefault(task_id, []).append(person)
        # ids matched by (task, level), unique per escalation: unordered RETURNING lets SQLite insert the batch
        # in multi-row statements (asking for parameter order makes it insert one row per statement)
        by_step = {(t, lv): i for i, t, lv in _INSERT_ESCALATIONS.rows(conn, rows)}
        fired = []
        for st, values in zip(steps, rows, strict=True):
            esc_id = by_step[(values["task_id"], values["level"])]
            before = paged.setdefault(st.row.id, [])
            self._record(tx, st, esc_id, now, [p for p in dict.fromkeys(before) if p != st.recipient])
            before.append(st.recipient)
            fired.append(Fired(id=esc_id, **values))
        tx.flush(conn)
        return fired

    def _guarded_update(self, conn: Connection, last: dict[int, _Step]) -> set[int]:
        """Advance every task to just past its last due step, only where it still stands where it was read;
        returns the tasks advanced. One cached statement run for every task (executemany): its summed row
        count says whether every task was advanced, which is the rule (the tasks were read in this transaction,
        holding SQLite's write lock or PostgreSQL's row locks). If not, `_CasLost` re-runs the batch one task
        per transaction, where a task's own count tells."""
        params = []
        for tid, st in last.items():
            params.append({"_id": tid, "_level": st.row.escalation_level, "_next": st.row.next_escalation_at,
                           "_new_level": st.level + 1,
                           "_new_next": step_time(st.row.due_at, self._chain(st.row.escalation_plan), st.level + 1)})
        count = _ADVANCE.many(conn, params)
        if count == len(params):
            return set(last)
        if len(params) == 1 and count == 0:
            return set()
        raise _CasLost(f"{count} of {len(params)} tasks advanced")

    def _record(self, tx: _Tx, st: _Step, esc_id: int, now: datetime, paged_before: list[str]) -> None:
        """The audit event and the notification (a kind and its facts) of one fired step."""
        r, level_no = st.row, st.level + 1  # people count reminders from 1: level 1 = the assignee at the deadline
        self._event(None, tx, at=now, actor=SYSTEM, kind="escalation_fired", incident_id=r.incident_id,  # type: ignore[arg-type]
                    task_id=r.id, key=r.key, level=level_no, target=st.target, recipient=st.recipient,
                    escalation=esc_id, late_seconds=(now - st.scheduled).total_seconds())
        facts = {"incident": r.incident_id, "title": r.inc_title, "severity": r.severity, "stage": r.stage,
                 "task": r.id, "task_zh": r.title_zh, "task_en": r.title_en, "group": r.group, "assignee": r.assignee,
                 "due_at": r.due_at.isoformat(), "level": level_no, "escalation": esc_id, "target": st.target,
                 "overdue_s": (now - r.due_at).total_seconds(), "paged_before": paged_before}
        tx.outbox.extend(messages(kind="escalation", key=f"esc:{r.id}:{level_no}", recipient=st.recipient,
                                  incident_id=r.incident_id, facts=facts, now=now, roster=self.roster,
                                  routing=self.routing))

    def _escalation_fault(self, task_id: int, now: datetime, exc: Exception) -> None:
        """Record a task whose escalation failed and page the on-call administrator about it.

        The task's chain is stopped (`next_escalation_at` cleared), so the fault is reported once rather than on
        every sweep, and the scheduler does not spin on a deadline it cannot fire; the task stays open and
        overdue for people to handle."""
        from crisis.store.models import Task

        error = f"{type(exc).__name__}: {exc}"[:500]
        with self._write() as (s, tx):
            task = s.get(Task, task_id, with_for_update=True)
            if task is None or task.status != "open":
                return
            inc = self._incident(s, task.incident_id)
            level = task.escalation_level
            task.next_escalation_at = None
            s.add(task)
            admin = self._on_call(s, now).primary
            self._event(s, tx, at=now, actor=SYSTEM, kind="escalation_failed", incident_id=inc.id, task_id=task.id,
                        key=task.key, level=level + 1, error=error, reported_to=admin)
            self._notify(tx, inc, kind="engine_fault", key=f"fault:{task.id}:{level + 1}", recipient=admin, now=now,
                         task=task, level=level + 1, error=error)

    def next_due(self) -> datetime | None:
        """The earliest pending escalation step: when the scheduler should wake next."""
        ((value,),) = _NEXT_DUE.read(self.engine)  # prebuilt, outside a transaction: asked at every wake
        return value  # min() keeps the column's type, so the value comes back aware UTC

