"""The incident stage machine, built once with `transitions` and shared by every incident.

Per the design notes we build one `Machine(model=None)` and attach a throw-away model
holding the stage read from the database, fire the trigger, and read the new stage back.
Guards get their facts (open required tasks, the decision, an override) as event kwargs,
so the machine itself never touches the database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from transitions import EventData, Machine, MachineError

from crisis.errors import GuardFailed, IllegalTrigger, InputError
from crisis.labels import STAGES as STAGES_ZH_EN

STAGES = ("monitoring", "reported", "assessing", "responding", "media_liaison", "onsite", "follow_up",
          "closed", "watch", "dismissed")
FINAL = ("closed", "dismissed")
DECISIONS = ("activate", "watch", "dismiss")
STAGE_NAMES = STAGES_ZH_EN  # labels live in crisis.labels (one catalogue)

# (trigger, source(s), dest, condition on the decision or None)
TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "report", "source": "monitoring", "dest": "reported"},
    {"trigger": "assess", "source": ["reported", "watch"], "dest": "assessing", "conditions": "decided_activate"},
    {"trigger": "assess", "source": ["reported", "watch"], "dest": "watch", "conditions": "decided_watch"},
    {"trigger": "assess", "source": ["reported", "watch"], "dest": "dismissed", "conditions": "decided_dismiss"},
    {"trigger": "respond", "source": "assessing", "dest": "responding"},
    {"trigger": "media", "source": "responding", "dest": "media_liaison"},
    {"trigger": "onsite", "source": "media_liaison", "dest": "onsite"},
    {"trigger": "skip_onsite", "source": "media_liaison", "dest": "follow_up"},
    {"trigger": "follow_up", "source": "onsite", "dest": "follow_up"},
    {"trigger": "close", "source": "follow_up", "dest": "closed"},
    {"trigger": "reopen", "source": ["follow_up", "closed", "watch", "dismissed"], "dest": "reported"},
]
TRIGGERS = ("report", "assess", "respond", "media", "onsite", "skip_onsite", "follow_up", "close", "reopen")


@dataclass
class _Probe:
    """Throw-away model: carries the stage in, the facts for guards, and the stage out."""

    state: str
    blocked_by: list[str] = field(default_factory=list)

    def decided_activate(self, event: EventData) -> bool:
        return event.kwargs.get("decision") == "activate"

    def decided_watch(self, event: EventData) -> bool:
        return event.kwargs.get("decision") == "watch"

    def decided_dismiss(self, event: EventData) -> bool:
        return event.kwargs.get("decision") == "dismiss"

    def tasks_done(self, event: EventData) -> bool:
        """Guard on every transition: required tasks of the stage are done, or overridden."""
        open_required: list[str] = event.kwargs.get("open_required", [])
        if open_required and not event.kwargs.get("override"):
            self.blocked_by = list(open_required)
            return False
        return True


class StageMachine:
    """Stateless facade over one shared `transitions.Machine`."""

    def __init__(self) -> None:
        transitions = [
            {**t, "conditions": ["tasks_done", *([t["conditions"]] if "conditions" in t else [])]}
            for t in TRANSITIONS
        ]
        self._machine = Machine(model=None, states=list(STAGES), transitions=transitions, initial="monitoring",
                                send_event=True, auto_transitions=False, ignore_invalid_triggers=False)
        self._lock = threading.Lock()
        # The machine's answers, memoised: a trigger's outcome depends only on the stage, the trigger, the
        # decision and whether required work is open or overridden, and attaching a model to `transitions` costs
        # more than the rest of a transition's decision (it binds every trigger onto the model, then unbinds).
        self._outcomes: dict[tuple[str, str, str | None, bool, bool], tuple[str | None, bool]] = {}
        self._allowed: dict[str, list[str]] = {}

    def allowed(self, stage: str) -> list[str]:
        """Triggers that exist from `stage` (guards aside)."""
        known = self._allowed.get(stage)
        if known is None:
            present = set(self._machine.get_triggers(stage))
            known = self._allowed[stage] = [t for t in TRIGGERS if t in present]
        return list(known)

    def target(self, stage: str, trigger: str, *, decision: str | None = None,
               open_required: list[str] | None = None, override: bool = False) -> str:
        """The stage the trigger leads to, or an error saying why not. Changes nothing."""
        if stage not in STAGES:
            raise InputError(f"unknown stage {stage!r}")
        if trigger not in TRIGGERS:
            raise InputError(f"unknown trigger {trigger!r} (triggers: {', '.join(TRIGGERS)})", field="trigger")
        if trigger not in self.allowed(stage):
            raise IllegalTrigger(trigger, stage, self.allowed(stage))
        if trigger == "assess" and decision not in DECISIONS:
            raise InputError(f"assess needs a decision: {', '.join(DECISIONS)} (got {decision!r})",
                             field="decision")
        if trigger != "assess":
            decision = None  # only assess reads a decision (and it is one of DECISIONS): the memo stays small
        key = (stage, trigger, decision, bool(open_required), override)
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = self._outcomes[key] = self._probe(stage, trigger, decision, bool(open_required), override)
        dest, blocked = outcome
        if dest is None:
            if blocked:
                raise GuardFailed(stage, list(open_required or []))
            raise IllegalTrigger(trigger, stage, self.allowed(stage))
        return dest

    def _probe(self, stage: str, trigger: str, decision: str | None, open_required: bool,
               override: bool) -> tuple[str | None, bool]:
        """Ask the machine itself: (the stage reached or None, whether the task guard blocked the move)."""
        probe = _Probe(stage)
        with self._lock:
            self._machine.add_model(probe, initial=stage)
            try:
                moved = probe.trigger(trigger, decision=decision, override=override,  # type: ignore[attr-defined]
                                      open_required=["required"] if open_required else [])
            except MachineError:
                return None, False
            finally:
                self._machine.remove_model(probe)
        return (probe.state, False) if moved else (None, bool(probe.blocked_by))


MACHINE = StageMachine()


CYCLE_ENTRIES = ("monitoring", "reported")  # a first cycle starts in monitoring; a reopened one in reported


def always_before(anchor: str, stage: str) -> bool:
    """Whether every cycle that reaches `stage` has entered `anchor` first (or `anchor` is `stage`).

    A deadline anchored at a stage is only ever computable when this holds: `monitoring` never happens in
    a reopened cycle, `onsite` is skipped on the way to follow-up, `watch` is one assessment outcome of
    several. Reopen edges are left out: they start a new cycle, whose clocks start again."""
    if anchor == stage:
        return True
    edges: dict[str, set[str]] = {}
    for t in TRANSITIONS:
        if t["trigger"] == "reopen":
            continue
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for src in sources:
            edges.setdefault(str(src), set()).add(str(t["dest"]))
    for entry in CYCLE_ENTRIES:
        if entry == anchor:
            continue
        seen, todo = {entry}, [entry]
        while todo:  # stages reachable from this entry without passing through the anchor
            for nxt in edges.get(todo.pop(), ()):
                if nxt != anchor and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        if stage in seen:
            return False
    return True
