"""Application service: each command is one database transaction around the pure engine.

Every command takes `now` from the injected clock (or an explicit `now`), validates all of
its input before writing, and either commits everything (state, audit events, outbox
messages) or nothing. Audit events are logged as structlog JSON only after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from crisis.clock import Clock, ensure_aware
from crisis.durations import format_duration
from crisis.engine.fsm import FINAL, MACHINE
from crisis.engine.plan import chase_plan, due_at, due_steps, plan_stage, step_time
from crisis.errors import CrisisError, Forbidden, InputError, NotFound
from crisis.logs import get_logger
from crisis.notify.outbox import DEFAULT_CHANNELS, messages
from crisis.playbook import PlaybookSet
from crisis.roster import GROUP_NAMES, Roster
from crisis.severity import Severity
from crisis.statements import lint_statement, required_levels, reviewer_qualifies
from crisis.store.db import read_session, write_session
from crisis.store.models import Escalation, Event, Incident, OutboxMessage, Statement, Task

SYSTEM = "system"


@dataclass
class _Tx:
    """What one command writes besides the ORM rows: audit events and outbox messages, inserted in
    bulk just before commit (one statement each instead of an ORM flush per row)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, s: Session) -> None:
        conn = s.connection()  # Core executemany: the ORM bulk path costs more than the rows
        if self.events:
            conn.execute(insert(Event.__table__), self.events)  # type: ignore[attr-defined]
        if self.outbox:
            conn.execute(insert(OutboxMessage.__table__), self.outbox)  # type: ignore[attr-defined]


def _signals(value: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (value or {}).items():
        if not isinstance(k, str) or not k:
            raise InputError(f"signal name {k!r} must be a non-empty string", field="signals")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InputError(f"signal '{k}' must be a number, got {v!r}", field=f"signals.{k}")
        if v < 0:
            raise InputError(f"signal '{k}' must not be negative", field=f"signals.{k}")
        out[k] = v
    return out


class CrisisService:
    def __init__(self, engine: Engine, playbooks: PlaybookSet, roster: Roster, clock: Clock, *,
                 channels: tuple[str, ...] = DEFAULT_CHANNELS) -> None:
        self.engine, self.playbooks, self.roster, self.clock = engine, playbooks, roster, clock
        self.channels = channels
        self.log = get_logger()

    # ------------------------------------------------------------------ helpers
    def _now(self, now: datetime | None) -> datetime:
        return ensure_aware(now) if now is not None else self.clock.now()

    def _actor(self, actor: str) -> str:
        if actor in (SYSTEM, "drill"):
            return actor
        self.roster.person(actor)
        return actor

    @contextmanager
    def _write(self) -> Iterator[tuple[Session, _Tx]]:
        """One command's transaction; its audit events are logged only once committed."""
        tx = _Tx()
        with write_session(self.engine) as s:
            yield s, tx
            tx.flush(s)
        for ev in tx.events:
            self.log.info(ev["kind"], incident=ev["incident_id"], actor=ev["actor"], at=ev["at"].isoformat(),
                          from_state=ev["from_state"], to_state=ev["to_state"], task=ev["task_id"], **ev["data"])

    def _event(self, s: Session, tx: _Tx, *, at: datetime, actor: str, kind: str, incident_id: int | None,
               from_state: str | None = None, to_state: str | None = None, task_id: int | None = None,
               **data: Any) -> None:
        tx.events.append({"incident_id": incident_id, "at": at, "actor": actor, "kind": kind,
                          "from_state": from_state, "to_state": to_state, "task_id": task_id, "data": data})

    def _incident(self, s: Session, incident_id: int, *, lock: bool = False) -> Incident:
        stmt = select(Incident).where(Incident.id == incident_id)
        if lock:
            stmt = stmt.with_for_update()
        inc = s.exec(stmt).first()
        if inc is None:
            raise NotFound(f"no incident #{incident_id}")
        return inc

    def _task(self, s: Session, task_id: int) -> Task:
        task = s.get(Task, task_id)
        if task is None:
            raise NotFound(f"no task #{task_id}")
        return task

    def _task_locked(self, s: Session, task_id: int) -> tuple[Task, Incident]:
        """A task read under its incident's row lock: commands on one incident take turns, and each decides
        on the task as the previous one left it (PostgreSQL's READ COMMITTED would otherwise let two
        commands both see it open)."""
        task = self._task(s, task_id)
        inc = self._incident(s, task.incident_id, lock=True)
        s.refresh(task)
        return task, inc

    def _statement_locked(self, s: Session, statement_id: int) -> Statement:
        st = s.exec(select(Statement).where(Statement.id == statement_id).with_for_update()
                    .execution_options(populate_existing=True)).first()
        if st is None:
            raise NotFound(f"no statement #{statement_id}")
        return st

    def find_task(self, incident_id: int, key: str) -> Task:
        """The current-cycle task of an incident by its playbook key (latest if re-entered)."""
        with read_session(self.engine) as s:
            task = s.exec(select(Task).where(Task.incident_id == incident_id, Task.key == key)
                          .order_by(col(Task.cycle).desc(), col(Task.id).desc())).first()
            if task is None:
                keys = s.exec(select(Task.key).where(Task.incident_id == incident_id)).all()
                raise NotFound(f"incident #{incident_id} has no task '{key}' (tasks: {', '.join(sorted(set(keys)))})")
            return task

    # ------------------------------------------------------------------ incidents
    def open_incident(self, *, title: str, category: str, actor: str, source_url: str | None = None,
                      signals: dict[str, Any] | None = None, severity: str | Severity | None = None,
                      now: datetime | None = None) -> Incident:
        now = self._now(now)
        actor = self._actor(actor)
        if not title or not title.strip():
            raise InputError("title must not be empty", field="title")
        playbook = self.playbooks.get(category)
        try:
            sev = Severity.parse(severity) if severity is not None else playbook.default_severity
        except ValueError as exc:
            raise InputError(str(exc), field="severity") from None
        sig = _signals(signals)
        with self._write() as (s, tx):
            inc = Incident(title=title.strip(), category=category, source_url=source_url, signals=sig,
                           stage="monitoring", severity=sev.value, opened_by=actor, opened_at=now,
                           stage_entered_at=now, playbook_version=playbook.version)
            s.add(inc)
            s.flush()
            assert inc.id is not None
            self._event(s, tx, at=now, actor=actor, kind="incident_opened", incident_id=inc.id,
                        to_state="monitoring", title=inc.title, category=category, severity=sev.value,
                        source_url=source_url, signals=sig)
            self._enter_stage(s, tx, inc, "monitoring", now, actor)
        return inc

    def fire(self, incident_id: int, trigger: str, *, actor: str, decision: str | None = None,
             severity: str | Severity | None = None, override: bool = False, reason: str | None = None,
             note: str | None = None, now: datetime | None = None) -> Incident:
        """Move an incident along the stage machine; illegal or blocked triggers change nothing."""
        now = self._now(now)
        actor = self._actor(actor)
        sev: Severity | None = None
        if severity is not None:
            try:
                sev = Severity.parse(severity)
            except ValueError as exc:
                raise InputError(str(exc), field="severity") from None
        if override:
            if not reason or not reason.strip():
                raise InputError("an override needs a reason", field="reason")
            if not self.roster.is_leadership(actor):
                raise Forbidden(f"only a leadership member may override; {actor} is not in the leadership group")
        if trigger == "assess" and not self.roster.is_leadership(actor):
            raise Forbidden(f"assessment is leadership's decision; {actor} is not in the leadership group")
        with self._write() as (s, tx):
            inc = self._incident(s, incident_id, lock=True)
            # A flare-up interrupts whatever stage it finds: reopening is never blocked by open tasks.
            current = self._stage_tasks(s, inc)
            open_required = [] if trigger == "reopen" else [
                t.key for t in current if t.status == "open" and t.required]
            target = MACHINE.target(inc.stage, trigger, decision=decision, open_required=open_required,
                                    override=override)
            source = inc.stage
            if override and open_required:
                self._event(s, tx, at=now, actor=actor, kind="override", incident_id=inc.id, from_state=source,
                            to_state=target, reason=reason.strip() if reason else "", waived=open_required)
            reopening = trigger == "reopen"
            self._event(s, tx, at=now, actor=actor, kind="stage_changed", incident_id=inc.id, from_state=source,
                        to_state=target, trigger=trigger, decision=decision, note=note,
                        cycle=inc.cycle + 1 if reopening else inc.cycle)
            moving = target != source or reopening
            if moving:  # leave within the current cycle, so the stage's own open tasks are the ones stopped
                self._leave_stage(s, tx, inc, current, now, actor, reason=reason if override else None,
                                  interrupted=reopening)
            if decision:
                inc.decision = decision
            if reopening:
                inc.cycle += 1
                inc.closed_at = None
                inc.decision = None
            if sev is not None and sev.value != inc.severity:
                self._event(s, tx, at=now, actor=actor, kind="severity_changed", incident_id=inc.id,
                            **{"from": inc.severity, "to": sev.value})
                inc.severity = sev.value
                self._regrade(s, tx, inc, now)
            if moving:
                if target in FINAL:
                    self._cancel_all(s, tx, inc, now, actor, why=target)
                    inc.closed_at = now
                self._enter_stage(s, tx, inc, target, now, actor)
            inc.version += 1
            s.add(inc)
        return inc

    def update_signals(self, incident_id: int, signals: dict[str, Any], *, actor: str, note: str | None = None,
                       now: datetime | None = None) -> Incident:
        now = self._now(now)
        actor = self._actor(actor)
        sig = _signals(signals)
        with self._write() as (s, tx):
            inc = self._incident(s, incident_id, lock=True)
            merged = {**inc.signals, **sig}
            self._event(s, tx, at=now, actor=actor, kind="signals_updated", incident_id=inc.id,
                        before=inc.signals, after=merged, note=note)
            inc.signals = merged
            inc.version += 1
            s.add(inc)
        return inc

    def note(self, incident_id: int, kind: str, text: str, *, actor: str, now: datetime | None = None,
             **data: Any) -> None:
        """A free timeline entry (drill injects, media calls, a family arriving on site)."""
        now = self._now(now)
        actor = self._actor(actor)
        with self._write() as (s, tx):
            inc = self._incident(s, incident_id)
            self._event(s, tx, at=now, actor=actor, kind=kind, incident_id=inc.id, text=text, **data)

    # ------------------------------------------------------------------ stage mechanics
    def _stage_tasks(self, s: Session, inc: Incident) -> list[Task]:
        return list(s.exec(select(Task).where(Task.incident_id == inc.id, Task.cycle == inc.cycle,
                                              Task.stage == inc.stage)).all())

    def _enter_stage(self, s: Session, tx: _Tx, inc: Incident, stage: str, now: datetime, actor: str) -> None:
        inc.stage = stage
        inc.stage_entered_at = now
        playbook = self.playbooks.get(inc.category)
        existing = {t.key for t in self._stage_tasks(s, inc)}
        planned = [p for p in plan_stage(playbook, stage, Severity(inc.severity), stage_entered_at=now,
                                         incident_opened_at=inc.opened_at, roster=self.roster)
                   if p.key not in existing]  # e.g. watch re-assessed as watch keeps its running tasks
        tasks = [Task(incident_id=inc.id, cycle=inc.cycle, stage=stage, key=p.key, group=p.group,
                      title_zh=p.title_zh, title_en=p.title_en, required=p.required, assignee=p.assignee,
                      anchor=p.anchor, created_at=now, due_at=p.due_at, escalation_plan=p.escalation_plan,
                      next_escalation_at=p.due_at if p.escalation_plan else None) for p in planned]
        s.add_all(tasks)
        s.flush()  # one flush for the ids the events and notifications refer to
        for p, task in zip(planned, tasks, strict=True):
            self._event(s, tx, at=now, actor=actor, kind="task_assigned", incident_id=inc.id, task_id=task.id,
                        key=p.key, group=p.group, assignee=p.assignee, required=p.required,
                        due_at=p.due_at.isoformat() if p.due_at else None)
            due_txt = p.due_at.isoformat() if p.due_at else "no deadline"
            self._notify(tx, inc, key=f"task:{task.id}:assigned", recipient=p.assignee, now=now,
                         subject=f"[舆情#{inc.id} {inc.severity}级] 新任务 New task: {p.title_zh}",
                         body=(f"{p.title_zh} / {p.title_en}\n"
                               f"组别 Group: {GROUP_NAMES[p.group][0]} / {GROUP_NAMES[p.group][1]}\n"
                               f"截止 Due: {due_txt}\n完成 Done: crisis task done {task.id}"),
                         payload={"type": "task_assigned", "task": task.id})

    def _leave_stage(self, s: Session, tx: _Tx, inc: Incident, tasks: list[Task], now: datetime, actor: str,
                     reason: str | None, interrupted: bool = False) -> None:
        """Close out the stage's open tasks: required ones were overridden (waived), optional ones
        lapse (cancelled); a flare-up reopening the incident cancels them all."""
        for task in tasks:
            if task.status != "open":
                continue
            task.status = "waived" if task.required and not interrupted else "cancelled"
            task.next_escalation_at = None
            if interrupted:
                task.note = "incident reopened on a flare-up"
            else:
                task.note = reason if task.required else "stage left before completion"
            s.add(task)
            self._event(s, tx, at=now, actor=actor, kind=f"task_{task.status}", incident_id=inc.id,
                        task_id=task.id, key=task.key, reason=task.note)

    def _cancel_all(self, s: Session, tx: _Tx, inc: Incident, now: datetime, actor: str, why: str) -> None:
        for task in s.exec(select(Task).where(Task.incident_id == inc.id, Task.status == "open")).all():
            task.status = "cancelled"
            task.next_escalation_at = None
            task.note = f"incident {why}"
            s.add(task)
            self._event(s, tx, at=now, actor=actor, kind="task_cancelled", incident_id=inc.id,
                        task_id=task.id, key=task.key, reason=task.note)

    def _regrade(self, s: Session, tx: _Tx, inc: Incident, now: datetime) -> None:
        """New grade: open tasks not yet escalated get the new grade's deadline and chase plan."""
        playbook = self.playbooks.get(inc.category)
        sev = Severity(inc.severity)
        for task in s.exec(select(Task).where(Task.incident_id == inc.id, Task.status == "open",
                                              Task.escalation_level == 0)).all():
            spec = next((t for t in playbook.tasks_for(task.stage) if t.key == task.key), None)
            if spec is None or spec.due is None:
                continue
            entered = inc.stage_entered_at if task.stage == inc.stage else task.created_at
            new_due = due_at(spec, sev, stage_entered_at=entered, incident_opened_at=inc.opened_at)
            plan = chase_plan(playbook.escalation_for(task.stage), sev, group=task.group, assignee=task.assignee,
                              roster=self.roster) if spec.escalate else []
            if new_due == task.due_at and [list(x) for x in plan] == [list(x) for x in task.escalation_plan]:
                continue
            self._event(s, tx, at=now, actor=SYSTEM, kind="task_regraded", incident_id=inc.id, task_id=task.id,
                        key=task.key, old_due=task.due_at.isoformat() if task.due_at else None,
                        new_due=new_due.isoformat() if new_due else None)
            task.due_at = new_due
            task.escalation_plan = [list(x) for x in plan]
            task.next_escalation_at = new_due if plan else None
            s.add(task)

    def _notify(self, tx: _Tx, inc: Incident | None, *, key: str, recipient: str, subject: str, body: str,
                now: datetime, payload: dict[str, Any]) -> None:
        tx.outbox.extend(messages(channels=self.channels, key=key, recipient=recipient,
                                  incident_id=inc.id if inc else None, subject=subject, body=body, now=now,
                                  payload=payload))

    # ------------------------------------------------------------------ tasks
    def complete_task(self, task_id: int, *, actor: str, note: str | None = None,
                      now: datetime | None = None) -> Task:
        now = self._now(now)
        actor = self._actor(actor)
        with self._write() as (s, tx):
            task, inc = self._task_locked(s, task_id)
            if task.status != "open":
                raise CrisisError(f"task #{task.id} '{task.key}' is already {task.status}")
            allowed = ({task.assignee, *self.roster.groups[task.group].everyone,
                        *self.roster.groups["leadership"].everyone}
                       | {self.roster.roles.get("duty_officer", "")})
            if actor not in allowed and actor != "drill":
                raise Forbidden(f"{actor} is not in the {task.group} group or leadership, and not the duty officer")
            task.status, task.done_at, task.done_by, task.note = "done", now, actor, note
            task.next_escalation_at = None
            s.add(task)
            late = (now - task.due_at).total_seconds() if task.due_at else None
            self._event(s, tx, at=now, actor=actor, kind="task_done", incident_id=inc.id, task_id=task.id,
                        key=task.key, late_seconds=max(0.0, late) if late is not None else None, note=note)
        return task

    def acknowledge(self, *, actor: str, escalation_id: int | None = None, task_id: int | None = None,
                    now: datetime | None = None) -> Escalation:
        """Stop a task's escalation chain. The acknowledger must have been paged, lead, or be on call."""
        now = self._now(now)
        actor = self._actor(actor)
        if (escalation_id is None) == (task_id is None):
            raise InputError("give exactly one of an escalation id or a task id")
        with self._write() as (s, tx):
            if escalation_id is not None:
                esc = s.get(Escalation, escalation_id)
                if esc is None:
                    raise NotFound(f"no escalation #{escalation_id}")
                task_id = esc.task_id
            assert task_id is not None
            task, inc = self._task_locked(s, task_id)
            fired = list(s.exec(select(Escalation).where(Escalation.task_id == task.id)
                                .order_by(col(Escalation.level))).all())
            if not fired:
                raise CrisisError(f"task #{task.id} '{task.key}' has no escalation to acknowledge")
            if task.acked_at is not None:
                raise CrisisError(f"task #{task.id} was already acknowledged by {task.acked_by} "
                                  f"at {task.acked_at.isoformat()}")
            if task.status != "open":
                raise CrisisError(f"task #{task.id} is {task.status}; its escalations are already stopped")
            paged = {e.recipient for e in fired}
            on_call = {oc.person for oc in self.roster.on_call}
            if actor not in paged | on_call and not self.roster.is_leadership(actor):
                raise Forbidden(f"{actor} was not paged for task #{task.id} and is neither leadership nor on call")
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

    # ------------------------------------------------------------------ escalation clock
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
            fired.extend(self._escalate(task_id, now))
        return fired

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
        return _as_utc(value) if value is not None else None

    # ------------------------------------------------------------------ statements
    def draft_statement(self, incident_id: int, *, title: str, body: str, actor: str, major: bool | None = None,
                        next_update: str | None = None, channel: str = "official_account",
                        now: datetime | None = None) -> Statement:
        now = self._now(now)
        actor = self._actor(actor)
        if not title.strip() or not body.strip():
            raise InputError("a statement needs a title and a body")
        with self._write() as (s, tx):
            inc = self._incident(s, incident_id, lock=True)
            if inc.stage in FINAL:
                raise CrisisError(f"incident #{inc.id} is {inc.stage}")
            is_major = major if major is not None else Severity(inc.severity).rank <= 2
            st = Statement(incident_id=inc.id, title=title.strip(), body=body.strip(), major=is_major,
                           channel=channel, drafted_by=actor, drafted_at=now, next_update=next_update,
                           status="in_review")
            s.add(st)
            s.flush()
            self._event(s, tx, at=now, actor=actor, kind="statement_drafted", incident_id=inc.id,
                        statement=st.id, title=st.title, major=is_major,
                        warnings=lint_statement(st.title, st.body, next_update))
        return st

    def review_statement(self, statement_id: int, *, actor: str, approve: bool, comment: str | None = None,
                         now: datetime | None = None) -> Statement:
        now = self._now(now)
        actor = self._actor(actor)
        with self._write() as (s, tx):
            st = self._statement_locked(s, statement_id)
            if st.status != "in_review":
                raise CrisisError(f"statement #{st.id} is {st.status}, not in review")
            levels = required_levels(st.major)
            level = len(st.reviews) + 1
            if not reviewer_qualifies(self.roster, actor, level):
                raise Forbidden(f"{actor} may not review at level {level} ({levels[level - 1]})")
            if any(r["by"] == actor for r in st.reviews):
                raise Forbidden(f"{actor} already reviewed statement #{st.id}; each level needs another person")
            st.reviews = [*st.reviews, {"level": level, "by": actor, "approve": approve, "at": now.isoformat(),
                                        "comment": comment}]
            if not approve:
                st.status = "rejected"
            elif level == len(levels):
                st.status = "approved"
            s.add(st)
            self._event(s, tx, at=now, actor=actor, kind="statement_reviewed", incident_id=st.incident_id,
                        statement=st.id, level=level, approve=approve, comment=comment, status=st.status)
        return st

    def release_statement(self, statement_id: int, *, actor: str, now: datetime | None = None) -> Statement:
        now = self._now(now)
        actor = self._actor(actor)
        with self._write() as (s, tx):
            st = self._statement_locked(s, statement_id)
            if st.status != "approved":
                done = sum(1 for r in st.reviews if r["approve"])
                need = len(required_levels(st.major))
                raise CrisisError(f"statement #{st.id} is {st.status} ({done}/{need} review levels approved); "
                                  "only an approved statement can be released")
            first = s.exec(select(func.count()).select_from(Statement).where(
                Statement.incident_id == st.incident_id, Statement.status == "released")).one() == 0
            st.status, st.released_at, st.released_by = "released", now, actor
            s.add(st)
            self._event(s, tx, at=now, actor=actor, kind="statement_released", incident_id=st.incident_id,
                        statement=st.id, title=st.title, first=first, next_update=st.next_update)
        return st

    # ------------------------------------------------------------------ queries
    def incidents(self, *, include_final: bool = True) -> list[Incident]:
        with read_session(self.engine) as s:
            stmt = select(Incident).order_by(col(Incident.id))
            if not include_final:
                stmt = stmt.where(col(Incident.stage).not_in(FINAL))
            return list(s.exec(stmt).all())

    def incident(self, incident_id: int) -> Incident:
        with read_session(self.engine) as s:
            return self._incident(s, incident_id)

    def tasks(self, incident_id: int) -> list[Task]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Task).where(Task.incident_id == incident_id)
                               .order_by(col(Task.id))).all())

    def escalations(self, incident_id: int | None = None, *, unacked_only: bool = False) -> list[Escalation]:
        with read_session(self.engine) as s:
            stmt = select(Escalation).order_by(col(Escalation.fired_at), col(Escalation.id))
            if incident_id is not None:
                stmt = stmt.where(Escalation.incident_id == incident_id)
            if unacked_only:
                stmt = stmt.join(Task, col(Task.id) == Escalation.task_id).where(
                    Task.status == "open", col(Task.acked_at).is_(None))
            return list(s.exec(stmt).all())

    def timeline(self, incident_id: int) -> list[Event]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Event).where(Event.incident_id == incident_id)
                               .order_by(col(Event.at), col(Event.id))).all())

    def statements(self, incident_id: int) -> list[Statement]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Statement).where(Statement.incident_id == incident_id)
                               .order_by(col(Statement.id))).all())

    def next_deadlines(self) -> dict[int, datetime]:
        """Per incident, the earliest due time among its open tasks."""
        with read_session(self.engine) as s:
            rows = s.exec(select(Task.incident_id, func.min(Task.due_at)).where(
                Task.status == "open", col(Task.due_at).is_not(None)).group_by(Task.incident_id)).all()
        return {iid: _as_utc(due) for iid, due in rows if due is not None}

    def outbox(self, *, undelivered_only: bool = False) -> list[OutboxMessage]:
        with read_session(self.engine) as s:
            stmt = select(OutboxMessage).order_by(col(OutboxMessage.id))
            if undelivered_only:
                stmt = stmt.where(col(OutboxMessage.delivered_at).is_(None))
            return list(s.exec(stmt).all())


def _as_utc(value: Any) -> datetime:
    """Aggregates bypass the column type; SQLite returns them as naive text or datetimes."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
