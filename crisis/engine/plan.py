"""Pure arithmetic for tasks and escalations: what a stage assigns, when it is due, when to chase."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import NamedTuple

from crisis.playbook import EscalationSpec, Playbook, TaskSpec
from crisis.roster import Roster
from crisis.severity import Severity


class PlannedTask(NamedTuple):
    """A task a stage assigns, as planned (a named tuple: every transition makes a few, and a frozen dataclass
    costs three times as much to make)."""

    stage: str
    key: str
    group: str
    title_zh: str
    title_en: str
    required: bool
    assignee: str
    anchor: str
    due_at: datetime | None
    escalation_plan: list[tuple[str, int]]


def due_at(spec: TaskSpec, severity: Severity, *, stage_entered_at: datetime,
           incident_opened_at: datetime, entered: Mapping[str, datetime] | None = None) -> datetime | None:
    """Deadline of a task for a grade; anchored at stage entry or at the incident's opening.

    `incident_opened_at` is the start of the incident's current cycle: a reopened incident restarts its
    regulatory clocks from the reopen (the flare-up is a new event for the authorities and the public),
    so a task anchored at the opening is never created days overdue. `entered`: when the current cycle
    entered each stage so far, for tasks anchored at a named earlier stage."""
    if spec.due is None:
        return None
    if spec.anchor == "incident":
        base = incident_opened_at
    elif spec.anchor == "stage":
        base = stage_entered_at
    else:  # a named stage: when this cycle entered it (validation makes sure it always has)
        base = (entered or {}).get(spec.anchor, stage_entered_at)
    return base + spec.due[severity]


def plan_stage(playbook: Playbook, stage: str, severity: Severity, *, stage_entered_at: datetime,
               incident_opened_at: datetime, roster: Roster,
               entered: Mapping[str, datetime] | None = None) -> list[PlannedTask]:
    """The tasks a stage assigns on entry, with deadlines and escalation plans for this grade.

    A task already overdue when it is created (an opening-anchored clock that ran out before its stage
    began) starts its chain at the first level at creation and keeps the waits between levels."""
    policy = playbook.escalation_for(stage)
    out = []
    for spec in playbook.tasks_for(stage):
        assignee = roster.assignee_for(spec.group, spec.role)
        due = due_at(spec, severity, stage_entered_at=stage_entered_at, incident_opened_at=incident_opened_at,
                     entered=entered)
        plan = chase_plan(policy, severity, group=spec.group, assignee=assignee, roster=roster,
                          overdue=overdue_by(due, stage_entered_at)) if (due and spec.escalate) else []
        out.append(PlannedTask(
            stage=stage, key=spec.key, group=spec.group, title_zh=spec.title.zh, title_en=spec.title.en,
            required=spec.required, assignee=assignee, anchor=spec.anchor, due_at=due, escalation_plan=plan))
    return out


def overdue_by(due: datetime | None, now: datetime) -> timedelta:
    """How far past its deadline a task is at `now` (zero if not yet due or without a deadline)."""
    return max(timedelta(0), now - due) if due is not None else timedelta(0)


def chase_plan(policy: EscalationSpec, severity: Severity, *, group: str, assignee: str,
               roster: Roster, overdue: timedelta = timedelta(0)) -> list[tuple[str, int]]:
    """A task's escalation steps as (target, seconds after the deadline), one wait apart.

    `overdue`: how late the task already is when its chain is planned. The first step then fires at
    once and the others keep their waits after it, instead of every level firing in the same minute
    (nobody had a chance to respond to the levels before).

    A chain step that would page the person the previous step paged is dropped (a task assigned to its
    group head goes on to leadership one wait later, not to the same head twice); only `repeat`
    deliberately chases the last step's person again.
    """
    wait = int(policy.wait[severity].total_seconds())
    start = int(overdue.total_seconds())
    return [(t, start + i * wait) for i, t in enumerate(_targets(policy, roster, group, assignee))]


# chase_plan's targets by (policy, roster, group, assignee): each entry keeps its policy and roster, so their ids
# stay theirs while it lives
_TARGETS: dict[tuple[int, int, str, str], tuple[EscalationSpec, Roster, tuple[str, ...]]] = {}


def _targets(policy: EscalationSpec, roster: Roster, group: str, assignee: str) -> tuple[str, ...]:
    """The steps' targets of a task's chain (see chase_plan), worked out once per policy, roster, group and
    assignee: policies and rosters are frozen models, so the answer cannot change, and every task a stage assigns
    asks it (a few roster look-ups per step)."""
    key = (id(policy), id(roster), group, assignee)
    hit = _TARGETS.get(key)
    if hit is not None and hit[0] is policy and hit[1] is roster:
        return hit[2]
    targets: list[str] = []
    previous: str | None = None
    for target in policy.chain:
        person = roster.fixed_recipient(target, group=group, assignee=assignee)
        if person is not None and person == previous:
            continue
        targets.append(target)
        previous = person
    targets += [policy.chain[-1]] * policy.repeat
    if len(_TARGETS) >= 1024:
        _TARGETS.clear()
    _TARGETS[key] = (policy, roster, tuple(targets))
    return tuple(targets)


def step_time(due: datetime, plan: list[tuple[str, int]], level: int) -> datetime | None:
    """When escalation step `level` (0 = the deadline itself) fires; None past the last step."""
    if level >= len(plan):
        return None
    return due + timedelta(seconds=plan[level][1])


def hold_plan(due: datetime, plan: list[tuple[str, int]], level: int, until: datetime) -> list[tuple[str, int]]:
    """The plan after an acknowledgement that holds the chain until `until`, with `level` steps fired.

    The remaining steps move later together (keeping their waits) so the next one fires at `until`; a step
    already planned later than that keeps its time, since an acknowledgement never hurries the chain. A chain
    with no step left gets one more reminder to its last target at `until`: an acknowledged task that stays
    open is never silently dropped."""
    at = math.ceil((until - due).total_seconds())
    if level >= len(plan):
        return [*plan, (plan[-1][0], max(at, plan[-1][1]))]
    shift = max(0, at - plan[level][1])
    return [*plan[:level], *((t, o + shift) for t, o in plan[level:])]


def due_steps(due: datetime, plan: list[tuple[str, int]], level: int, now: datetime) -> list[int]:
    """Steps from `level` on that are due at `now` (several after downtime; each fires once)."""
    out = []
    while (t := step_time(due, plan, level)) is not None and t <= now:
        out.append(level)
        level += 1
    return out

