"""Incident commands: open, move along the stage machine, update signals, add notes; the stage
mechanics (enter, leave, regrade) they share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from crisis import textinput
from crisis.engine import policy
from crisis.engine.duties import OpenTask, StageExit, stage_exit
from crisis.engine.fsm import FINAL, MACHINE
from crisis.engine.plan import chase_plan, due_at, overdue_by, plan_stage, step_time
from crisis.errors import Conflict, InputError
from crisis.principal import Principal
from crisis.service.base import DRILL, SYSTEM, ServiceBase, _Tx
from crisis.severity import Severity
from crisis.store.models import Event, Incident, Task


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
        with self._write(who) as (s, tx):
            inc = Incident(title=title, category=category, source_url=source_url, signals=sig,
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

    def fire(self, incident_id: int, trigger: str, *, principal: Principal, decision: str | None = None,
             severity: str | Severity | None = None, override: bool = False, reason: str | None = None,
             note: str | None = None, expected_version: int | None = None, now: datetime | None = None) -> Incident:
        """Move an incident along the stage machine; illegal or blocked triggers change nothing."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        sev: Severity | None = None
        if severity is not None:
            try:
                sev = Severity.parse(severity)
            except ValueError as exc:
                raise InputError(str(exc), field="severity") from None
        reason = textinput.optional_line(reason, "reason", max_len=textinput.REASON_MAX)
        note = textinput.optional_block(note, "note", max_len=textinput.NOTE_MAX)
        if override and not reason:
            raise InputError("an override needs a reason", field="reason")
        policy.enforce(policy.may_trigger(who, trigger, override=override))
        with self._write(who) as (s, tx):
            inc = self._incident(s, incident_id, lock=True, expected_version=expected_version)
            work = self._open_work(s, inc)
            reopening = trigger == "reopen"  # a flare-up interrupts whatever stage it finds, never blocked
            dest = MACHINE.target(inc.stage, trigger, decision=decision)  # where it would go, before the guard
            exit_ = stage_exit(self._duties(inc, work), final=dest in FINAL, reopening=reopening)
            target = MACHINE.target(inc.stage, trigger, decision=decision, open_required=exit_.blocking,
                                    override=override)
            source = inc.stage
            if override and exit_.blocking:
                self._event(s, tx, at=now, actor=actor, kind="override", incident_id=inc.id, from_state=source,
                            to_state=target, reason=reason.strip() if reason else "", waived=exit_.blocking)
            moving = target != source or reopening
            keys = {t.id: t.key for t in work}
            self._event(s, tx, at=now, actor=actor, kind="stage_changed", incident_id=inc.id, from_state=source,
                        to_state=target, trigger=trigger, decision=decision, note=note,
                        cycle=inc.cycle + 1 if reopening else inc.cycle,
                        **({"waived": exit_.blocking, "carried": [keys[i] for i in exit_.carried],
                            "lapsed": [keys[i] for i in exit_.lapsed]} if moving else {}))
            if moving:  # leave within the current cycle, so the stage's own open tasks are the ones stopped
                self._leave_stage(s, tx, inc, work, exit_, now, actor, target=target, reason=reason)
            if decision:
                inc.decision = decision
            if reopening:
                inc.cycle += 1
                inc.cycle_started_at = now  # the new cycle's regulatory clocks run from the reopen
                inc.closed_at = None
                inc.decision = None
            if sev is not None and sev.value != inc.severity:
                policy.enforce(policy.may_regrade(who, self._facts(inc)))
                self._event(s, tx, at=now, actor=actor, kind="severity_changed", incident_id=inc.id,
                            **{"from": inc.severity, "to": sev.value})
                inc.severity = sev.value
                self._regrade(s, tx, inc, now)
            if moving:
                if target in FINAL:  # _leave_stage stopped the only open tasks: each stage's are closed out
                    inc.closed_at = now
                self._enter_stage(s, tx, inc, target, now, actor)
            inc.version += 1
            s.add(inc)
        return inc

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
            raise InputError("a regrade needs a reason", field="reason")
        with self._write(who) as (s, tx):
            inc = self._incident(s, incident_id, lock=True, expected_version=expected_version)
            if inc.stage in FINAL:
                raise Conflict(f"incident #{inc.id} is {inc.stage}; reopen it before regrading")
            policy.enforce(policy.may_regrade(who, self._facts(inc)))
            if sev.value == inc.severity:
                raise InputError(f"incident #{inc.id} is already grade {sev.value}", field="severity")
            self._event(s, tx, at=now, actor=actor, kind="severity_changed", incident_id=inc.id,
                        reason=reason.strip(), trigger="regrade", **{"from": inc.severity, "to": sev.value})
            inc.severity = sev.value
            self._regrade(s, tx, inc, now)
            inc.version += 1
            s.add(inc)
        return inc

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
        with self._write(who) as (s, tx):
            inc = self._incident(s, incident_id, lock=True, expected_version=expected_version)
            merged = {**inc.signals, **sig}
            self._event(s, tx, at=now, actor=actor, kind="signals_updated", incident_id=inc.id,
                        before=inc.signals, after=merged, note=note)
            inc.signals = merged
            inc.version += 1
            s.add(inc)
        return inc

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
        with self._write(who) as (s, tx):
            inc = self._incident(s, incident_id)
            self._event(s, tx, at=now, actor=actor, kind=kind, incident_id=inc.id, text=text, **data)

    def _facts(self, inc: Incident) -> policy.IncidentFacts:
        return policy.IncidentFacts(id=inc.id or 0, stage=inc.stage, severity=inc.severity,
                                    allowed_triggers=tuple(MACHINE.allowed(inc.stage)), final=inc.stage in FINAL)

    def _enter_stage(self, s: Session, tx: _Tx, inc: Incident, stage: str, now: datetime, actor: str) -> None:
        inc.stage = stage
        inc.stage_entered_at = now
        playbook = self.playbooks.get(inc.category)
        # Each stage is entered at most once per cycle (watch re-assessed as watch does not move), so no task
        # of this stage exists yet.
        planned = plan_stage(playbook, stage, Severity(inc.severity), stage_entered_at=now,
                             incident_opened_at=inc.cycle_anchor, roster=self.roster,
                             entered=self._stage_entries(s, inc))
        tasks = [Task(incident_id=inc.id, cycle=inc.cycle, stage=stage, key=p.key, group=p.group,
                      title_zh=p.title_zh, title_en=p.title_en, required=p.required, assignee=p.assignee,
                      anchor=p.anchor, created_at=now, due_at=p.due_at, escalation_plan=p.escalation_plan,
                      next_escalation_at=step_time(p.due_at, p.escalation_plan, 0) if p.due_at else None)
                 for p in planned]
        s.add_all(tasks)
        s.flush()  # one flush for the ids the events and notifications refer to
        for p, task in zip(planned, tasks, strict=True):
            self._event(s, tx, at=now, actor=actor, kind="task_assigned", incident_id=inc.id, task_id=task.id,
                        key=p.key, group=p.group, assignee=p.assignee, required=p.required,
                        due_at=p.due_at.isoformat() if p.due_at else None)
            self._notify(tx, inc, kind="task_assigned", key=f"task:{task.id}:assigned", recipient=p.assignee,
                         now=now, task=task)

    def _leave_stage(self, s: Session, tx: _Tx, inc: Incident, work: list[Task], exit_: StageExit, now: datetime,
                     actor: str, *, target: str, reason: str | None) -> None:
        """Apply the stage exit: carried tasks stay open (recorded), required ones were waived by the
        override, optional ones lapse, and a reopen cancels the old cycle's open work."""
        by_id = {t.id: t for t in work}
        for task_id in exit_.carried:
            task = by_id[task_id]
            self._event(s, tx, at=now, actor=actor, kind="task_carried", incident_id=inc.id, task_id=task.id,
                        key=task.key, from_stage=inc.stage, to_stage=target)
        for ids, status, note in ((exit_.waived, "waived", (reason or "").strip()),
                                  (exit_.lapsed, "cancelled", "stage left before completion"),
                                  (exit_.interrupted, "cancelled", "incident reopened on a flare-up")):
            for task_id in ids:
                task = by_id[task_id]
                task.status, task.note, task.next_escalation_at = status, note, None
                s.add(task)
                self._event(s, tx, at=now, actor=actor, kind=f"task_{status}", incident_id=inc.id,
                            task_id=task.id, key=task.key, reason=note)

    def _open_work(self, s: Session, inc: Incident) -> list[Task]:
        """The current stage's open tasks and those carried into it from earlier stages of this cycle."""
        return list(s.exec(select(Task).where(Task.incident_id == inc.id, Task.cycle == inc.cycle,
                                              Task.status == "open").order_by(col(Task.id))).all())

    def _stage_entries(self, s: Session, inc: Incident) -> dict[str, datetime]:
        """When the current cycle first entered each stage (from the audit timeline), for deadlines anchored
        at a named earlier stage."""
        rows = s.exec(select(Event.to_state, func.min(Event.at)).where(
            Event.incident_id == inc.id, col(Event.kind).in_(("stage_changed", "incident_opened")),
            col(Event.at) >= inc.cycle_anchor, col(Event.to_state).is_not(None)).group_by(Event.to_state)).all()
        return {str(stage): at for stage, at in rows}  # min() keeps the column's UTC type

    def _duties(self, inc: Incident, work: list[Task]) -> list[OpenTask]:
        playbook = self.playbooks.get(inc.category)
        out = []
        for t in work:
            spec = playbook.task_spec(t.stage, t.key)
            out.append(OpenTask(id=t.id or 0, key=t.key, required=t.required, carry=bool(spec and spec.carry)))
        return out

    def _regrade(self, s: Session, tx: _Tx, inc: Incident, now: datetime) -> None:
        """New grade: open tasks not yet escalated get the new grade's deadline and chase plan."""
        playbook = self.playbooks.get(inc.category)
        sev = Severity(inc.severity)
        entries = self._stage_entries(s, inc)
        for task in s.exec(select(Task).where(Task.incident_id == inc.id, Task.status == "open",
                                              Task.escalation_level == 0)).all():
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
            self._event(s, tx, at=now, actor=SYSTEM, kind="task_regraded", incident_id=inc.id, task_id=task.id,
                        key=task.key, old_due=task.due_at.isoformat() if task.due_at else None,
                        new_due=new_due.isoformat() if new_due else None)
            task.due_at = new_due
            task.escalation_plan = [list(x) for x in plan]
            task.next_escalation_at = step_time(new_due, plan, 0) if new_due else None
            s.add(task)

