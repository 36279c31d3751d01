"""Playbooks: per incident category and stage, the tasks to assign, to whom, and by when.

A playbook is YAML (see playbooks/). Deadlines are given per severity (I–IV) and are
relative to the stage entry (default) or to the incident's opening (`anchor: incident`),
for clocks such as "authoritative information within 5 h of the event".
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from crisis.durations import parse_duration
from crisis.engine.fsm import always_before
from crisis.errors import InputError, NotFound
from crisis.roster import GROUPS, Roster
from crisis.severity import Severity
from crisis.yamlsrc import Loc, LocatedValueError, YamlDoc, format_loc, load_yaml

# Stages that can carry tasks (closed and dismissed are final and carry none).
TASK_STAGES = ("monitoring", "reported", "assessing", "responding", "media_liaison", "onsite", "follow_up",
               "watch")
CHAIN_TARGETS = ("assignee", "group_head", "leadership_head", "on_call")
# The longest deadline, wait or acknowledgement timeout a playbook may give: anything longer is a typo
# (`wait: 99999999d`), and deadline arithmetic on it would overflow inside the escalation clock.
MAX_DURATION = timedelta(days=365)
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


def _bounded(value: Any, what: str) -> timedelta:
    d = parse_duration(value)
    if d > MAX_DURATION:
        raise ValueError(f"{what} {value!r} is longer than {MAX_DURATION.days} days")
    return d


def _per_severity(value: Any, what: str) -> dict[Severity, timedelta]:
    """A single duration for every grade, or a mapping with all four grades; each finite and at most
    MAX_DURATION."""
    if isinstance(value, dict):
        out: dict[Severity, timedelta] = {}
        for k, v in value.items():
            try:
                sev = Severity.parse(k)
            except ValueError as exc:
                raise ValueError(f"{what}: {exc}") from None
            out[sev] = _bounded(v, what)
        missing = [s.value for s in Severity if s not in out]
        if missing:
            raise ValueError(f"{what} must give all four grades; missing {', '.join(missing)}")
        return out
    d = _bounded(value, what)
    return {s: d for s in Severity}


class EscalationSpec(_Strict):
    """Who is chased, in order, once a deadline passes, how long each step waits, and how long an
    acknowledgement holds the chain (`ack_timeout`, default the grade's wait: PagerDuty's acknowledgement
    timeout; if the task is still open then, the chain resumes at the next level)."""

    chain: list[str] = Field(default_factory=lambda: list(CHAIN_TARGETS), min_length=1)
    wait: dict[Severity, timedelta]
    repeat: int = Field(default=2, ge=0, le=20)
    ack_timeout: dict[Severity, timedelta] | None = None

    @field_validator("wait", "ack_timeout", mode="before")
    @classmethod
    def _positive(cls, v: Any, info: ValidationInfo) -> dict[Severity, timedelta] | None:
        if v is None and info.field_name == "ack_timeout":
            return None
        waits = _per_severity(v, str(info.field_name))
        if any(w <= timedelta(0) for w in waits.values()):
            raise ValueError(f"{info.field_name} must be longer than zero")
        return waits

    def ack_timeout_for(self, severity: Severity) -> timedelta:
        """How long an acknowledgement holds this chain for a grade."""
        return (self.ack_timeout or self.wait)[severity]

    @field_validator("chain")
    @classmethod
    def _chain(cls, v: list[str]) -> list[str]:
        for t in v:
            if t not in CHAIN_TARGETS and not re.match(r"^(role|person):[A-Za-z0-9_.-]+$", t):
                raise ValueError(f"unknown chain step {t!r} (use {', '.join(CHAIN_TARGETS)}, role:X or person:X)")
        return v


class TaskSpec(_Strict):
    key: str
    group: str
    title: Text
    required: bool = True
    due: dict[Severity, timedelta] | None = None
    anchor: str = "stage"  # stage entry, the incident's (cycle's) opening, or entry into a named earlier stage
    role: str | None = None
    escalate: bool = True
    carry: bool = False  # still open when the stage is left: stays open into the next stage instead
    guide: Text | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not _KEY.match(v):
            raise ValueError(f"task key {v!r} must be lower_snake_case")
        return v

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, v: str) -> str:
        if v not in ("stage", "incident", *TASK_STAGES):
            raise ValueError(f"unknown anchor {v!r} (use stage, incident or a stage name: {', '.join(TASK_STAGES)})")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if v not in GROUPS:
            raise ValueError(f"unknown group {v!r} (use {', '.join(GROUPS)})")
        return v

    @field_validator("due", mode="before")
    @classmethod
    def _due(cls, v: Any) -> dict[Severity, timedelta] | None:
        return None if v is None else _per_severity(v, "due")


class StageSpec(_Strict):
    tasks: list[TaskSpec] = Field(default_factory=list)
    escalation: EscalationSpec | None = None

    @model_validator(mode="after")
    def _unique(self) -> StageSpec:
        first: dict[str, int] = {}
        for i, t in enumerate(self.tasks):
            if t.key in first:
                raise LocatedValueError(("tasks", i, "key"),
                                        f"duplicate task key '{t.key}' (already used by tasks[{first[t.key]}])")
            first[t.key] = i
        return self


class Playbook(_Strict):
    category: str
    name: Text
    description: Text | None = None
    version: str = "1"
    default_severity: Severity = Severity.II
    escalation: EscalationSpec
    stages: dict[str, StageSpec]

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if not _KEY.match(v):
            raise ValueError(f"category {v!r} must be lower_snake_case")
        return v

    @field_validator("stages", mode="before")
    @classmethod
    def _stages(cls, v: Any) -> Any:
        for name in v if isinstance(v, dict) else ():
            if name not in TASK_STAGES:
                raise LocatedValueError((str(name),), f"unknown stage {name!r} (use {', '.join(TASK_STAGES)})")
        return v

    @model_validator(mode="after")
    def _every_duty_comes_due(self) -> Playbook:
        """A required task that can never become due is a duty nobody will be chased for: one without a
        deadline, or one anchored at a stage that some cycle reaches its own stage without entering."""
        for name, st in self.stages.items():
            for i, t in enumerate(st.tasks):
                if t.required and t.due is None:
                    raise LocatedValueError(("stages", name, "tasks", i, "due"),
                                            f"required task '{t.key}' has no deadline, so it can never become due "
                                            "(give `due`, or make it `required: false`)")
                if t.anchor in TASK_STAGES and not always_before(t.anchor, name):
                    raise LocatedValueError(("stages", name, "tasks", i, "anchor"),
                                            f"task '{t.key}' is anchored at stage '{t.anchor}', which does not "
                                            f"always happen before '{name}' in a cycle, so its deadline may never "
                                            "start (anchor at an earlier stage every path passes, or `incident`)")
        return self

    def tasks_for(self, stage: str) -> list[TaskSpec]:
        spec = self.stages.get(stage)
        return list(spec.tasks) if spec else []

    def task_spec(self, stage: str, key: str) -> TaskSpec | None:
        return next((t for t in self.tasks_for(stage) if t.key == key), None)

    def escalation_for(self, stage: str) -> EscalationSpec:
        spec = self.stages.get(stage)
        return spec.escalation if spec and spec.escalation else self.escalation


class PlaybookSet:
    """All playbooks of a folder, one per category."""

    def __init__(self, playbooks: dict[str, Playbook], sources: dict[str, str] | None = None) -> None:
        self._by_category = playbooks
        self.sources = sources or {}

    def get(self, category: str) -> Playbook:
        try:
            return self._by_category[category]
        except KeyError:
            raise NotFound(f"no playbook for category '{category}' "
                           f"(known: {', '.join(sorted(self._by_category)) or 'none'})") from None

    @property
    def categories(self) -> list[str]:
        return sorted(self._by_category)

    def __iter__(self):  # noqa: ANN204 - iterator of playbooks
        return iter(self._by_category.values())


def parse_playbook(doc: YamlDoc) -> Playbook:
    if not isinstance(doc.data, dict):
        raise doc.error((), "a playbook must be a mapping")
    pb = doc.validate(Playbook)
    return pb


def load_playbook(path: str | Path) -> Playbook:
    return parse_playbook(load_yaml(path))


def load_playbooks(folder: str | Path, cache: Path | None = None) -> PlaybookSet:
    """Every playbook of the folder (`cache`: crisis.yamlsrc's parse cache folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("playbook folder not found", file=str(folder))
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise InputError("no playbooks (*.yaml) in folder", file=str(folder))
    found: dict[str, Playbook] = {}
    sources: dict[str, str] = {}
    for f in files:
        doc = load_yaml(f, cache)
        pb = parse_playbook(doc)
        if pb.category in found:
            raise doc.error(("category",), f"category '{pb.category}' is already defined in "
                                           f"{sources[pb.category]}")
        found[pb.category] = pb
        sources[pb.category] = str(f)
    return PlaybookSet(found, sources)


def check_roster(playbooks: PlaybookSet, roster: Roster) -> None:
    """Every `role:` of a task and every `role:X` / `person:X` chain step must exist in the roster.

    Without this a misspelt role would silently hand the task to the group head.
    """
    people = {p.id for p in roster.people}
    for pb in playbooks:

        def fail(loc: Loc, message: str, pb: Playbook = pb) -> InputError:
            source = playbooks.sources.get(pb.category)
            return load_yaml(source).error(loc, message) if source else InputError(message, field=format_loc(loc))

        chains = [(("escalation", "chain"), pb.escalation)] + [
            (("stages", name, "escalation", "chain"), st.escalation) for name, st in pb.stages.items() if st.escalation]
        for loc, spec in chains:
            for i, step in enumerate(spec.chain):
                kind, _, who = step.partition(":")
                if (kind == "role" and who not in roster.roles) or (kind == "person" and who not in people):
                    raise fail((*loc, i), f"chain step '{step}': no such {kind} in the roster")
        for name, st in pb.stages.items():
            for i, t in enumerate(st.tasks):
                if t.role is not None and t.role not in roster.roles:
                    raise fail(("stages", name, "tasks", i, "role"), f"role '{t.role}' is not in the roster "
                               f"(roles: {', '.join(sorted(roster.roles)) or 'none'})")
