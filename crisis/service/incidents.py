"""Incident commands: open, move along the stage machine, update signals, add notes; the stage
mechanics (enter, leave, regrade) they share.

These are the write hot paths, written as SQLAlchemy Core statements on one connection: one read of the
incident (row-locked) and of its open work, the pure engine decides (crisis.engine: stage machine, stage
exit, plan), then batched writes: one executemany per kind of row, task inserts with RETURNING for the ids
the events and notifications name, and one guarded update of the incident (its version must still be the
one read). No model is built per row and no session flushes behind the command's back; the command's
return value is its incident as a record (`Rec.as_record`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from crisis import textinput
from crisis.engine import policy
from crisis.engine.duties import OpenTask, StageExit, stage_exit
from crisis.engine.fsm import FINAL, MACHINE
from crisis.engine.plan import chase_plan, due_at, overdue_by, plan_stage, step_time
from crisis.errors import Conflict, GuardFailed, InputError, NotFound
from crisis.playbook import Playbook
from crisis.principal import Principal
from crisis.service.base import DRILL, EVT, INC, SYSTEM, TASK, Rec, ServiceBase, _Tx, recs
from crisis.severity import Severity
from crisis.store.prepared import InsertMany, Prepared
from crisis.store.records import Incident

_NAMED = ("stage", "incident")  # deadline anchors that need no stage-entry times
_MOVABLE = ("stage", "stage_entered_at", "decision", "cycle", "cycle_started_at", "closed_at", "severity")
# one statement shape for every stop of a stage exit: the ids, statuses and notes are bound per row
_STOP = Prepared(update(TASK).where(TASK.c.id == bindparam("b_id"))
                 .values(status=bindparam("b_status"), note=bindparam("b_note"), next_escalation_at=None))
_INSERT_INCIDENT = Prepared(insert(INC).values({c.key: bindparam(c.key, type_=c.type) for c in INC.columns
                                                if c.key != "id"}).returning(INC.c.id))
_TASK_COLUMNS = tuple(c.key for c in TASK.columns if c.key != "id")
_INSERT_TASKS = InsertMany(TASK, _TASK_COLUMNS, ("key", "id"))
_EXISTS = Prepared(select(INC.c.id).where(INC.c.id == bindparam("b_id")))
_OPEN_WORK = Prepared(select(TASK.c.id, TASK.c.stage, TASK.c.key, TASK.c.required)
                      .where(TASK.c.incident_id == bindparam("b_id"), TASK.c.cycle == bindparam("b_cycle"),
                             TASK.c.status == "open"))  # sorted by id in Python: the index walk needs no sorter
# The incident with the open tasks of its cycle. With `status = 'open'` in the join, SQLite walked the open-task
# index over every incident's open tasks instead of this incident's few tasks; `status || '' = 'open'` (the same
# for a NOT NULL column) cannot use that partial index, so the tasks are found through (incident_id, cycle) and
# only the open ones come back (a cycle's closed tasks were a third to two thirds of the rows read).
_WITH_WORK = Prepared(
    select(INC, TASK.c.id.label("w_id"), TASK.c.stage.label("w_stage"), TASK.c.key.label("w_key"),
           TASK.c.required.label("w_required"), TASK.c.status.label("w_status"))
    .select_from(INC.outerjoin(TASK, and_(TASK.c.incident_id == INC.c.id, TASK.c.cycle == INC.c.cycle,
                                          TASK.c.status.op("||")("") == "open")))
    .where(INC.c.id == bindparam("b_id")))  # (the work sorted by id in Python, as _OPEN_WORK)
_INC_COLUMNS = tuple(c.key for c in INC.columns)
# when the incident's current cycle first entered each stage (the two kinds spelt out: IN (…) would expand)
_ENTRIES = Prepared(select(EVT.c.to_state, func.min(EVT.c.at).label("at")).where(
    EVT.c.incident_id == bindparam("b_id"), or_(EVT.c.kind == "stage_changed", EVT.c.kind == "incident_opened"),
    EVT.c.at >= bindparam("b_since", type_=EVT.c.at.type), EVT.c.to_state.is_not(None)).group_by(EVT.c.to_state))
_REPLAN = Prepared(update(TASK).where(TASK.c.id == bindparam("b_id"))
                   .values(due_at=bindparam("b_due", type_=TASK.c.due_at.type),
                           escalation_plan=bindparam("b_plan", type_=TASK.c.escalation_plan.type),
                           next_escalation_at=bindparam("b_next", type_=TASK.c.next_escalation_at.type)))


def _by_id(rec: Rec) -> int:
    return int(rec.id)


# an incident's tasks, read off uq_task_stage_key (its leading column): with status = 'open' in the WHERE, SQLite
# walks the open-task index over every incident's open tasks instead
_INCIDENT_TASKS = Prepared(select(TASK).where(TASK.c.incident_id == bindparam("b_id")))


def _not_escalated(tasks: Iterable[Any]) -> list[Any]:
    """The open tasks no step has fired for yet, in the order regrading always took them (the open-task index's:
    no deadline first, then due time, then id), so their task_regraded events stay in that order."""
    found = [t for t in tasks if t.status == "open" and t.escalation_level == 0]
    return sorted(found, key=lambda t: (t.due_at is not None, t.due_at or datetime.min.replace(tzinfo=UTC), t.id))


@cache
def _save_statement(fields: tuple[str, ...]) -> Prepared:
    """The incident's guarded update of `fields` (one statement per set of fields, built once)."""
    values = {k: bindparam(f"b_{k}", type_=INC.c[k].type) for k in fields}
    return Prepared(update(INC).where(INC.c.id == bindparam("b_id"), INC.c.version == bindparam("b_version"))
                    .values(version=bindparam("b_version") + 1, **values))


class IncidentCommands(ServiceBase):
    def open_incident(self, *, title: str, category: str, principal: Principal, source_url: str | None = None,
                      signals: dict[str, Any] | None = None, severity: str | Severity | None = None,
                      now: datetime | None = None) -> Incident:
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        title = textinput.one_line(title, "title", max_len=textinput.TITLE_MAX)
        source_url = textinput.optional_line(source_url, "source_url", max_len=textinput.URL_MAX)
        playbook = self.playbooks.get(category)
        try:
            sev = Severity.parse(severity) if severity is not None else playbook.default_severity
        except ValueError as exc:
            raise InputError(str(exc), field="severity") from None
        sig = textinput.signals(signals)
        with self._core(who) as (conn, tx):
            inc = Rec(title=title, category=category, source_url=source_url, signals=sig, stage="monitoring",
                      severity=sev.value, decision=None, cycle=1, opened_by=actor, opened_at=now,
                      stage_entered_at=now, closed_at=None, playbook_version=playbook.version, version=0,
                      cycle_started_at=None)
            inc.id = _INSERT_INCIDENT.rows(conn, vars(inc))[0][0]
            self._event(conn, tx, at=now, actor=actor, kind="incident_opened", incident_id=inc.id,
                        to_state="monitoring", title=inc.title, category=category, severity=sev.value,
                        source_url=source_url, signals=sig)
            self._enter_stage(conn, tx, inc, "monitoring", now, actor)
        return inc.as_record(Incident)

    def fire(self, incident_id: int, trigger: str, *, principal: Principal, decision: str | None = None,
             severity: str | Severity | None = None, override: bool = False, reason: str | None = None,
             note: str | None = None, expected_version: int | None = None, now: datetime | None = None) -> Incident:
        """Move an incident along the stage machine; illegal or blocked triggers change nothing."""
        now = self._now(now)
        who = self._principal(principal, now)
        sev: Severity | None = None
        if severity is not None:
            try:
                sev = Severity.parse(severity)
            except ValueError as exc:
                raise InputError(str(exc), field="severity") from None
        reason = textinput.optional_line(reason, "reason", max_len=textinput.REASON_MAX)
        note = textinput.optional_block(note, "note", max_len=textinput.NOTE_MAX)
        if override and not reason:
            raise InputError("an override needs a reason", field="reason", kind="reason_required")
        policy.enforce(policy.may_trigger(who, trigger, override=override))
        with self._core(who) as (conn, tx):
            inc, work = self._incident_with_work(conn, incident_id, expected_version)
            read_version = inc.version
            self._move(conn, tx, inc, work, trigger, who, decision=decision, sev=sev, override=override, reason=reason,
                       note=note, now=now)
            self._save_incident(conn, inc, read_version)
        return inc.as_record(Incident)

    def _incident_with_work(self, conn: Connection, incident_id: int,
                            expected_version: int | None) -> tuple[Rec, list[Rec]]:
        """The incident row, locked, and its open work. One statement on SQLite, where the command already holds
        the write lock; on PostgreSQL the row lock comes first and the tasks are read after it (a join would read
        them from before the wait)."""
        if conn.dialect.name != "sqlite":
            inc = self._incident_row(conn, incident_id, lock=True, expected_version=expected_version)
            return inc, self._open_work(conn, inc)
        n = len(_INC_COLUMNS)  # the incident's columns lead each row: read and converted once
        rows = _WITH_WORK.rows(conn, {"b_id": incident_id}, same=n)
        if not rows:
            raise NotFound(what="incident", ref=incident_id)
        inc = self._checked(conn, Rec(**dict(zip(_INC_COLUMNS, rows[0], strict=False))), incident_id,
                            expected_version)
        return inc, sorted((Rec(id=r[n], stage=r[n + 1], key=r[n + 2], required=r[n + 3]) for r in rows
                            if r[n + 4] == "open"), key=_by_id)

    def _move(self, conn: Connection, tx: _Tx, inc: Rec, work: list[Rec], trigger: str, who: Principal, *,
              decision: str | None, sev: Severity | None, override: bool, reason: str | None, note: str | None,
              now: datetime) -> None:
        """The transition itself on the locked incident row: the engine decides, the rows follow."""
        actor = who.person
        reopening = trigger == "reopen"  # a flare-up interrupts whatever stage it finds, never blocked
        dest = MACHINE.target(inc.stage, trigger, decision=decision)  # where it would go, before the guard
        exit_ = stage_exit(self._duties(inc, work), final=dest in FINAL, reopening=reopening)
        target = _guarded_target(inc, trigger, decision, exit_.blocking, override)
        source = inc.stage
        if override and exit_.blocking:
            self._event(conn, tx, at=now, actor=actor, kind="override", incident_id=inc.id, from_state=source,
                        to_state=target, reason=reason.strip() if reason else "", waived=exit_.blocking)
        moving = target != source or reopening
        keys = {t.id: t.key for t in work}
        self._event(conn, tx, at=now, actor=actor, kind="stage_changed", incident_id=inc.id, from_state=source,
                    to_state=target, trigger=trigger, decision=decision, note=note,
                    cycle=inc.cycle + 1 if reopening else inc.cycle,
                    **({"waived": exit_.blocking, "carried": [keys[i] for i in exit_.carried],
                        "lapsed": [keys[i] for i in exit_.lapsed]} if moving else {}))
        if moving:  # leave within the current cycle, so the stage's own open tasks are the ones stopped
            self._leave_stage(conn, tx, inc, work, exit_, now, actor, target=target, reason=reason)
        if decision:
            inc.decision = decision
        if reopening:
            inc.cycle += 1
            inc.cycle_started_at = now  # the new cycle's regulatory clocks run from the reopen
            inc.closed_at = None
            inc.decision = None
        if sev is not None and sev.value != inc.severity:
            policy.enforce(policy.may_regrade(who, self._facts(inc)))
            self._event(conn, tx, at=now, actor=actor, kind="severity_changed", incident_id=inc.id,
                        **{"from": inc.severity, "to": sev.value})
            inc.severity = sev.value
            self._regrade(conn, tx, inc, now)
        if moving:
            if target in FINAL:  # _leave_stage stopped the only open tasks: each stage's are closed out
                inc.closed_at = now
            self._enter_stage(conn, tx, inc, target, now, actor)

    def _save_incident(self, conn: Connection, inc: Rec, read_version: int,
                       fields: tuple[str, ...] = _MOVABLE) -> None:
        """The incident's one guarded update: its version must still be the one read (the row lock makes that
        so; the compare-and-set keeps it so for any writer that skipped the lock), and it moves on by one."""
        done = _save_statement(fields).run(conn, {"b_id": inc.id, "b_version": read_version,
                                                  **{f"b_{k}": getattr(inc, k) for k in fields}})
        if done != 1:
            self._incident_row(conn, inc.id, expected_version=read_version)  # raises StaleVersion, naming why
            raise Conflict(f"incident #{inc.id} changed during the command")
        inc.version = read_version + 1

    def regrade(self, incident_id: int, *, severity: str | Severity, reason: str, principal: Principal,
                expected_version: int | None = None, now: datetime | None = None) -> Incident:
        """Leadership changes the grade at any stage, with a reason (when unsure, grade higher; leadership
        confirms or changes it). Open tasks not yet escalated get the new grade's deadlines and chains;
        the timeline records from → to and why."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        try:
            sev = Severity.parse(severity)
        except ValueError as exc:
            raise InputError(str(exc), field="severity") from None
        reason = textinput.optional_line(reason, "reason", max_len=textinput.REASON_MAX) or ""
        if not reason:
            raise InputError("a regrade needs a reason", field="reason", kind="reason_required")
        with self._core(who) as (conn, tx):
            inc = self._incident_row(conn, incident_id, lock=True, expected_version=expected_version)
            read_version = inc.version
            if inc.stage in FINAL:
                raise Conflict(f"incident #{inc.id} is {inc.stage}; reopen it before regrading")
            policy.enforce(policy.may_regrade(who, self._facts(inc)))
            if sev.value == inc.severity:
                raise InputError(f"incident #{inc.id} is already grade {sev.value}", field="severity")
            self._event(conn, tx, at=now, actor=actor, kind="severity_changed", incident_id=inc.id,
                        reason=reason.strip(), trigger="regrade", **{"from": inc.severity, "to": sev.value})
            inc.severity = sev.value
            self._regrade(conn, tx, inc, now)
            self._save_incident(conn, inc, read_version, ("severity",))
        return inc.as_record(Incident)

    def update_signals(self, incident_id: int, signals: dict[str, Any], *, principal: Principal,
                       note: str | None = None, expected_version: int | None = None,
                       now: datetime | None = None) -> Incident:
        now = self._now(now)
        who = self._principal(principal, now)
        return self._update_signals(incident_id, signals, who.person, note, now, who, expected_version)

    def _update_signals(self, incident_id: int, signals: dict[str, Any], actor: str, note: str | None,
                        now: datetime, who: Principal | None, expected_version: int | None = None) -> Incident:
        sig = textinput.signals(signals)
        note = textinput.optional_block(note, "note", max_len=textinput.NOTE_MAX)
        with self._core(who) as (conn, tx):
            inc = self._incident_row(conn, incident_id, lock=True, expected_version=expected_version)
            read_version = inc.version
            merged = {**inc.signals, **sig}
            self._event(conn, tx, at=now, actor=actor, kind="signals_updated", incident_id=inc.id,
                        before=inc.signals, after=merged, note=note)
            inc.signals = merged
            self._save_incident(conn, inc, read_version, ("signals",))
        return inc.as_record(Incident)

    def note(self, incident_id: int, kind: str, text: str, *, principal: Principal, now: datetime | None = None,
             **data: Any) -> None:
        """A free timeline entry (media calls, a family arriving on site, a refused drill action)."""
        now = self._now(now)
        who = self._principal(principal, now)
        self._note(incident_id, kind, text, who.person, now, who, data)

    def drill_inject(self, incident_id: int, text: str, *, signals: dict[str, Any] | None = None,
                     signals_note: str | None = None, now: datetime | None = None, **data: Any) -> None:
        """The drill runner's own path: a scenario inject recorded as the facilitator ("drill"), never a
        caller-chosen actor. Signals first, then the inject note, each its own transaction as before."""
        now = self._now(now)
        if signals:
            self._update_signals(incident_id, signals, DRILL, signals_note, now, None)
        self._note(incident_id, "inject", text, DRILL, now, None, data)

    def _note(self, incident_id: int, kind: str, text: str, actor: str, now: datetime, who: Principal | None,
              data: dict[str, Any]) -> None:
        text = textinput.block(text, "text", max_len=textinput.NOTE_MAX)
        with self._core(who) as (conn, tx):
            if _EXISTS.first(conn, {"b_id": incident_id}) is None:
                raise NotFound(what="incident", ref=incident_id)
            self._event(conn, tx, at=now, actor=actor, kind=kind, incident_id=incident_id, text=text, **data)

    def _facts(self, inc: Incident | Rec) -> policy.IncidentFacts:
        return policy.IncidentFacts(id=inc.id or 0, stage=inc.stage, severity=inc.severity,
                                    allowed_triggers=tuple(MACHINE.allowed(inc.stage)), final=inc.stage in FINAL)

    def _enter_stage(self, conn: Connection, tx: _Tx, inc: Rec, stage: str, now: datetime, actor: str) -> None:
        inc.stage = stage
        inc.stage_entered_at = now
        playbook = self.playbooks.get(inc.category)
        # Each stage is entered at most once per cycle (watch re-assessed as watch does not move), so no task
        # of this stage exists yet.
        planned = plan_stage(playbook, stage, Severity(inc.severity), stage_entered_at=now,
                             incident_opened_at=inc.cycle_anchor, roster=self.roster,
                             entered=self._stage_entries(conn, inc, playbook, stage))
        if not planned:
            return
        rows = [{"incident_id": inc.id, "cycle": inc.cycle, "stage": stage, "key": p.key, "group": p.group,
                 "title_zh": p.title_zh, "title_en": p.title_en, "required": p.required, "assignee": p.assignee,
                 "anchor": p.anchor, "created_at": now, "due_at": p.due_at, "status": "open", "done_at": None,
                 "done_by": None, "note": None, "escalation_plan": [list(x) for x in p.escalation_plan],
                 "escalation_level": 0, "acked_at": None, "acked_by": None,
                 "next_escalation_at": step_time(p.due_at, p.escalation_plan, 0) if p.due_at else None}
                for p in planned]
        # one multi-row INSERT … RETURNING: ids come back by key (unique in the stage), in whatever order
        ids = dict(_INSERT_TASKS.rows(conn, rows))
        for p, row in zip(planned, rows, strict=True):
            task_id = ids[p.key]
            self._event(conn, tx, at=now, actor=actor, kind="task_assigned", incident_id=inc.id, task_id=task_id,
                        key=p.key, group=p.group, assignee=p.assignee, required=p.required,
                        due_at=p.due_at.isoformat() if p.due_at else None)
            self._notify(tx, inc, kind="task_assigned", key=f"task:{task_id}:assigned", recipient=p.assignee,
                         now=now, task=Rec(id=task_id, **row))

    def _leave_stage(self, conn: Connection, tx: _Tx, inc: Rec, work: list[Rec], exit_: StageExit,
                     now: datetime, actor: str, *, target: str, reason: str | None) -> None:
        """Apply the stage exit: carried tasks stay open (recorded), required ones were waived by the
        override, optional ones lapse, and a reopen cancels the old cycle's open work."""
        by_id = {t.id: t for t in work}
        for task_id in exit_.carried:
            task = by_id[task_id]
            self._event(conn, tx, at=now, actor=actor, kind="task_carried", incident_id=inc.id, task_id=task.id,
                        key=task.key, from_stage=inc.stage, to_stage=target)
        stops = []
        for ids, status, note in ((exit_.waived, "waived", (reason or "").strip()),
                                  (exit_.lapsed, "cancelled", "stage left before completion"),
                                  (exit_.interrupted, "cancelled", "incident reopened on a flare-up")):
            for task_id in ids:
                task = by_id[task_id]
                stops.append({"b_id": task.id, "b_status": status, "b_note": note})
                self._event(conn, tx, at=now, actor=actor, kind=f"task_{status}", incident_id=inc.id,
                            task_id=task.id, key=task.key, reason=note)
        _STOP.many(conn, stops)

    def _open_work(self, conn: Connection, inc: Rec) -> list[Rec]:
        """The current stage's open tasks and those carried into it from earlier stages of this cycle."""
        return sorted(recs(_OPEN_WORK, conn, {"b_id": inc.id, "b_cycle": inc.cycle}), key=_by_id)

    def _stage_entries(self, conn: Connection, inc: Rec, playbook: Playbook | None = None,
                       stage: str | None = None) -> dict[str, datetime]:
        """When the current cycle first entered each stage (from the audit timeline), for deadlines anchored
        at a named earlier stage. Given the stage about to be entered, read only if one of its tasks needs it."""
        if playbook is not None and all(t.anchor in _NAMED for t in playbook.tasks_for(stage or "")):
            return {}
        rows = _ENTRIES.rows(conn, {"b_id": inc.id, "b_since": inc.cycle_anchor})
        return {str(stage): at for stage, at in rows}  # min() keeps the column's UTC type

    def _duties(self, inc: Rec, work: list[Rec]) -> list[OpenTask]:
        playbook = self.playbooks.get(inc.category)
        out = []
        for t in work:
            spec = playbook.task_spec(t.stage, t.key)
            out.append(OpenTask(id=t.id or 0, key=t.key, required=t.required, carry=bool(spec and spec.carry)))
        return out

    def _regrade(self, conn: Connection, tx: _Tx, inc: Rec, now: datetime) -> None:
        """New grade: open tasks not yet escalated get the new grade's deadline and chase plan."""
        playbook = self.playbooks.get(inc.category)
        sev = Severity(inc.severity)
        entries = self._stage_entries(conn, inc)
        replans = []
        for task in _not_escalated(recs(_INCIDENT_TASKS, conn, {"b_id": inc.id})):
            spec = next((t for t in playbook.tasks_for(task.stage) if t.key == task.key), None)
            if spec is None or spec.due is None:
                continue
            entered = inc.stage_entered_at if task.stage == inc.stage else task.created_at
            new_due = due_at(spec, sev, stage_entered_at=entered, incident_opened_at=inc.cycle_anchor,
                             entered=entries)
            plan = chase_plan(playbook.escalation_for(task.stage), sev, group=task.group, assignee=task.assignee,
                              roster=self.roster, overdue=overdue_by(new_due, now)) if spec.escalate else []
            if new_due == task.due_at and [list(x) for x in plan] == [list(x) for x in task.escalation_plan]:
                continue
            self._event(conn, tx, at=now, actor=SYSTEM, kind="task_regraded", incident_id=inc.id, task_id=task.id,
                        key=task.key, old_due=task.due_at.isoformat() if task.due_at else None,
                        new_due=new_due.isoformat() if new_due else None)
            replans.append({"b_id": task.id, "b_due": new_due, "b_plan": [list(x) for x in plan],
                            "b_next": step_time(new_due, plan, 0) if new_due else None})
        _REPLAN.many(conn, replans)


def _guarded_target(inc: Rec, trigger: str, decision: str | None, blocking: list[str], override: bool) -> str:
    """Where the trigger takes the incident, its open required tasks (`blocking`) considered; a blocked move names
    the incident's category too, whose playbook titles those tasks for a page."""
    try:
        return MACHINE.target(inc.stage, trigger, decision=decision, open_required=blocking, override=override)
    except GuardFailed as exc:
        raise GuardFailed(exc.stage, exc.tasks, inc.category) from None
