"""Who may do what: pure rules over a principal's roles and the facts of an incident, task or statement.

The service asks these functions before it changes anything (`enforce` turns a refusal into Forbidden
or Conflict) and adapters ask them which actions to offer (`incident_actions`, `task_actions`,
`statement_actions`). Each refusal names the rule (`RULES`) so a 403 can say why. Roles come from
`crisis.principal.roles_of`: `group:<g>`, `head:<g>`, `leadership`, `leadership_head`, `role:<name>`,
`on_call`. State checks (a task already done, a statement not in review) are refusals too, marked
`conflict`, because for a UI "not now" and "not you" both mean "do not offer the button".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crisis import labels
from crisis.engine.fsm import TRIGGERS
from crisis.errors import Conflict, Forbidden
from crisis.principal import Principal

RULES: dict[str, str] = {code: en for code, (_zh, en) in labels.RULES.items()}  # worded once, in crisis.labels


@dataclass(frozen=True)
class Decision:
    """One answer: allowed, or refused under `rule` for `reason` (`conflict`: refused for the state)."""

    action: str
    allowed: bool
    rule: str
    reason: str = ""
    conflict: bool = False

    def __bool__(self) -> bool:
        return self.allowed


def _ok(action: str, rule: str) -> Decision:
    return Decision(action, True, rule)


def _no(action: str, rule: str, reason: str, *, conflict: bool = False) -> Decision:
    return Decision(action, False, rule, reason, conflict)


def enforce(decision: Decision) -> None:
    """Raise the typed error a refusal means; do nothing when allowed."""
    if decision.allowed:
        return
    if decision.conflict:
        raise Conflict(decision.reason)
    raise Forbidden(f"{decision.reason} (rule {decision.rule}: {RULES[decision.rule]})", rule=decision.rule)


def allowed(decisions: Iterable[Decision]) -> set[str]:
    return {d.action for d in decisions if d.allowed}


# ------------------------------------------------------------------ facts the rules read
@dataclass(frozen=True)
class IncidentFacts:
    id: int
    stage: str
    severity: str
    allowed_triggers: tuple[str, ...]
    open_required: tuple[str, ...] = ()
    final: bool = False


@dataclass(frozen=True)
class TaskFacts:
    id: int
    group: str
    assignee: str
    status: str
    required: bool = True
    paged: frozenset[str] = field(default_factory=frozenset)  # recipients of its escalations so far
    acked: bool = False


@dataclass(frozen=True)
class StatementFacts:
    id: int
    status: str
    major: bool
    drafted_by: str
    reviewed_by: tuple[str, ...] = ()
    approved: int = 0  # review levels approved so far
    levels: int = 3  # how many review levels it needs
    personal_data: bool = False  # the lint found ID card or mobile numbers in it

    @property
    def next_level(self) -> int:
        return len(self.reviewed_by) + 1


# ------------------------------------------------------------------ rules
def _who(p: Principal) -> str:
    return p.person


def may_act(p: Principal) -> Decision:
    """Open incidents, record signals and notes, draft statements, fire ordinary stage triggers."""
    return _ok("act", "team") if p.roles else _no("act", "team", f"{_who(p)} is not on the roster")


def may_complete(p: Principal, task: TaskFacts) -> Decision:
    a = "complete"
    if task.status != "open":
        return _no(a, "state", f"task #{task.id} is already {task.status}", conflict=True)
    if (p.person == task.assignee or p.has(f"group:{task.group}") or p.has("leadership")
            or p.has("role:duty_officer")):
        return _ok(a, "complete")
    return _no(a, "complete", f"{_who(p)} is not in the {task.group} group or leadership, and not the duty officer")


def may_ack(p: Principal, task: TaskFacts) -> Decision:
    a = "ack"
    if not task.paged:
        return _no(a, "state", f"task #{task.id} has no escalation to acknowledge", conflict=True)
    if task.acked:
        return _no(a, "state", f"task #{task.id} was already acknowledged", conflict=True)
    if task.status != "open":
        return _no(a, "state", f"task #{task.id} is {task.status}; its escalations are already stopped",
                   conflict=True)
    if p.person in task.paged or p.has("leadership") or p.has("on_call"):
        return _ok(a, "ack")
    return _no(a, "ack", f"{_who(p)} was not paged for task #{task.id} and is neither leadership nor on call")


def may_mark_applicable(p: Principal, task: TaskFacts) -> Decision:
    a = "applicable"
    if task.status != "open":
        return _no(a, "state", f"task #{task.id} is already {task.status}", conflict=True)
    if p.has(f"head:{task.group}") or p.has("leadership"):
        return _ok(a, "applicable")
    return _no(a, "applicable", f"{_who(p)} is neither the {task.group} group's head nor leadership")


def may_trigger(p: Principal, trigger: str, *, override: bool = False) -> Decision:
    """Who may fire a stage trigger, whatever the stage (the service checks this before reading state)."""
    a = f"fire:{trigger}"
    if override and not p.has("leadership"):
        return _no(a, "override", f"only a leadership member may override; {_who(p)} is not in the leadership group")
    if trigger == "assess" and not p.has("leadership"):
        return _no(a, "assess", f"assessment is leadership's decision; {_who(p)} is not in the leadership group")
    if trigger == "close" and not (p.has("leadership") or p.has("role:duty_officer")):
        return _no(a, "close", f"{_who(p)} is neither leadership nor the duty officer")
    if trigger == "reopen" and not (p.has("leadership") or p.has("group:monitoring")
                                    or p.has("role:duty_officer")):
        return _no(a, "reopen", f"{_who(p)} is not in the monitoring group or leadership")
    if not p.roles:
        return _no(a, "team", f"{_who(p)} is not on the roster")
    return _ok(a, trigger if trigger in RULES else "team")


def may_fire(p: Principal, inc: IncidentFacts, trigger: str, *, override: bool = False) -> Decision:
    """A stage trigger on this incident: the stage must allow it and the principal may fire it."""
    if trigger not in inc.allowed_triggers:
        allowed_s = ", ".join(inc.allowed_triggers) or "none (final stage)"
        return _no(f"fire:{trigger}", "state",
                   f"trigger '{trigger}' is not allowed from stage '{inc.stage}'; allowed: {allowed_s}", conflict=True)
    return may_trigger(p, trigger, override=override)


def may_override(p: Principal) -> Decision:
    if p.has("leadership"):
        return _ok("override", "override")
    return _no("override", "override", f"only a leadership member may override; {_who(p)} is not in the "
                                       "leadership group")


def may_regrade(p: Principal, inc: IncidentFacts) -> Decision:
    if inc.final:
        return _no("regrade", "state", f"incident #{inc.id} is {inc.stage}", conflict=True)
    if p.has("leadership"):
        return _ok("regrade", "regrade")
    return _no("regrade", "regrade", f"only leadership may change the grade; {_who(p)} is not in the leadership group")


def reviewer_level_ok(p: Principal, level: int) -> bool:
    if level == 1:
        return p.has("group:monitoring") or p.has("role:info_staff")
    if level == 2:
        return p.has("role:info_dept_head") or (p.has("leadership") and not p.has("leadership_head"))
    return level == 3 and p.has("leadership")


def may_review(p: Principal, st: StatementFacts) -> Decision:
    a = "review"
    if st.status != "in_review":
        return _no(a, "state", f"statement #{st.id} is {st.status}, not in review", conflict=True)
    if p.person == st.drafted_by:
        return _no(a, "review.four_eyes", f"{_who(p)} drafted statement #{st.id}; another person must review it")
    level = st.next_level
    if not reviewer_level_ok(p, level):
        return _no(a, f"review.{level}", f"{_who(p)} may not review at level {level}")
    if p.person in st.reviewed_by:
        return _no(a, "review.once", f"{_who(p)} already reviewed statement #{st.id}; each level needs another person")
    return _ok(a, f"review.{level}")


def may_release(p: Principal, st: StatementFacts, *, override: bool = False) -> Decision:
    """Release an approved statement; one with personal data only as a leadership override (with a reason,
    which the service requires and audits)."""
    a = "release"
    if st.status != "approved":
        return _no(a, "state", f"statement #{st.id} is {st.status} ({st.approved}/{st.levels} review "
                               "levels approved); only an approved statement can be released", conflict=True)
    if st.personal_data and not override:
        return _no(a, "release.personal_data", f"statement #{st.id} contains personal data (ID card or mobile "
                   "numbers): remove it, or a leadership member may release it with an override and a reason",
                   conflict=True)
    if st.personal_data and not p.has("leadership"):
        return _no(a, "release.personal_data", f"{_who(p)} is not in the leadership group")
    if p.person == st.drafted_by or p.has("group:monitoring") or p.has("leadership"):
        return _ok(a, "release")
    return _no(a, "release", f"{_who(p)} did not draft statement #{st.id} and is not in the monitoring group "
                             "or leadership")


# ------------------------------------------------------------------ what to offer
def incident_actions(p: Principal, inc: IncidentFacts) -> dict[str, Decision]:
    """Every action on the incident itself, allowed or refused with its rule."""
    out: dict[str, Decision] = {}
    for trig in TRIGGERS:
        out[f"fire:{trig}"] = may_fire(p, inc, trig)
    out["override"] = may_override(p) if inc.open_required else _no(
        "override", "state", "no required task is open", conflict=True)
    out["regrade"] = may_regrade(p, inc)
    act = may_act(p)
    for name in ("signals", "note", "draft_statement"):
        out[name] = Decision(name, act.allowed, act.rule, act.reason, act.conflict)
    if inc.final:
        out["draft_statement"] = _no("draft_statement", "state", f"incident #{inc.id} is {inc.stage}", conflict=True)
    return out


def task_actions(p: Principal, task: TaskFacts) -> dict[str, Decision]:
    return {"complete": may_complete(p, task), "ack": may_ack(p, task), "applicable": may_mark_applicable(p, task)}


def statement_actions(p: Principal, st: StatementFacts) -> dict[str, Decision]:
    return {"review": may_review(p, st), "release": may_release(p, st),
            "release_override": may_release(p, st, override=True) if st.personal_data else _no(
                "release", "release.personal_data", f"statement #{st.id} has no personal data to override")}


def refusals(decisions: Mapping[str, Decision]) -> dict[str, str]:
    """For a UI: each refused action with its reason and rule."""
    return {k: f"{d.reason} ({d.rule})" for k, d in decisions.items() if not d.allowed}


def may_arrange_on_call(p: Principal) -> Decision:
    """Overrides and imported shifts: leadership, the duty officer, or someone on the on-call rota."""
    if p.has("leadership") or p.has("role:duty_officer") or p.has("on_call"):
        return _ok("on_call", "on_call")
    return _no("on_call", "on_call", f"{_who(p)} is neither leadership, the duty officer nor on the on-call rota")


def may_view_drills(p: Principal) -> Decision:
    """Drill scorecards grade named people's response times: they are for those who run and debrief drills
    (leadership, the group heads, the duty officer), not for every team member."""
    if p.has("leadership") or p.has("role:duty_officer") or any(r.startswith("head:") for r in p.roles):
        return _ok("drills", "drills")
    return _no("drills", "drills", f"{_who(p)} is neither leadership, a group head nor the duty officer")
