"""What happens to open work when an incident leaves a stage: pure, given the open tasks and the move.

A stage change never drops a duty silently. Each open task of the stage (or carried into it):
- `carry: true` in the playbook → stays open into the next stage (it can still be completed, late or not);
- required (by the playbook, or marked applicable for this incident) → holds the stage until done; a leadership
  override waives it, and the override names it;
- optional and not applicable → lapses (cancelled), listed on the stage change.
Entering a final stage (closed, dismissed) carries nothing: carried required work holds that exit too.
A reopen on a flare-up interrupts everything: the old cycle's open tasks are cancelled, never blocking.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpenTask:
    id: int
    key: str
    required: bool
    carry: bool


@dataclass(frozen=True)
class StageExit:
    blocking: list[str] = field(default_factory=list)  # keys of required tasks holding the stage
    waived: list[int] = field(default_factory=list)    # ids: required, left by override
    carried: list[int] = field(default_factory=list)   # ids: stay open into the next stage
    lapsed: list[int] = field(default_factory=list)    # ids: optional, cancelled
    interrupted: list[int] = field(default_factory=list)  # ids: cancelled by a reopen


def stage_exit(open_tasks: list[OpenTask], *, final: bool, reopening: bool) -> StageExit:
    """Sort the open tasks by what the move does to them (see the module docstring)."""
    if reopening:
        return StageExit(interrupted=[t.id for t in open_tasks])
    out = StageExit()
    for t in open_tasks:
        if t.carry and not final:
            out.carried.append(t.id)
        elif t.required:
            out.blocking.append(t.key)
            out.waived.append(t.id)
        else:
            out.lapsed.append(t.id)
    return out
