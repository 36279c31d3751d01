"""Drill scenario files: timed injects and scripted responder actions.

A step is either an `inject` (something happens: signals rise, a media call, a family
arrives on site) or a `do` (a responder acts: complete a task, fire a stage trigger,
acknowledge an escalation, get a statement reviewed and released). Leaving out the
responders' steps shows what escalates when nobody acts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crisis.clock import ensure_aware
from crisis.durations import parse_duration
from crisis.engine.fsm import DECISIONS, TRIGGERS
from crisis.playbook import PlaybookSet, Text
from crisis.roster import Roster
from crisis.scorecard import METRICS, Expectation
from crisis.yamlsrc import YamlDoc, load_yaml

ACTIONS = (*TRIGGERS, "complete", "ack", "statement", "signals")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_DRILL = timedelta(days=366)  # a drill longer than a year is a typo; bounds every date computed from it
EARLIEST, LATEST = datetime(1971, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)


def _duration(v: Any) -> timedelta:
    d = parse_duration(v)
    if d > MAX_DRILL:
        raise ValueError(f"{v!r} is longer than a drill may last ({MAX_DRILL.days} days)")
    return d


class IncidentSpec(_Strict):
    title: str = Field(min_length=1)
    category: str
    source_url: str | None = None
    severity: str | None = None
    signals: dict[str, float] = Field(default_factory=dict)
    opened_by: str


class Step(_Strict):
    at: timedelta
    inject: str | None = None
    do: str | None = None
    by: str | None = None
    text: str | None = None
    signals: dict[str, float] | None = None
    task: str | None = None
    decision: Literal["activate", "watch", "dismiss"] | None = None
    severity: str | None = None
    override: bool = False
    reason: str | None = None
    note: str | None = None
    title: str | None = None
    body: str | None = None
    next_update: str | None = None
    major: bool | None = None
    reviewers: list[str] = Field(default_factory=list)

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> timedelta:
        return _duration(v)

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if (self.inject is None) == (self.do is None):
            raise ValueError("a step needs exactly one of `inject` or `do`")
        if self.do is not None:
            if self.do not in ACTIONS:
                raise ValueError(f"unknown action {self.do!r} (use {', '.join(ACTIONS)})")
            if self.by is None:
                raise ValueError(f"action '{self.do}' needs `by` (a person id from the roster)")
            if self.do in ("complete", "ack") and not self.task:
                raise ValueError(f"action '{self.do}' needs `task` (a playbook task key)")
            if self.do == "assess" and self.decision is None:
                raise ValueError(f"assess needs `decision` ({', '.join(DECISIONS)})")
            if self.do == "statement" and not (self.title and self.body):
                raise ValueError("statement needs `title` and `body`")
            if self.do == "signals" and not self.signals:
                raise ValueError("signals needs `signals`")
        if self.override and not self.reason:
            raise ValueError("override needs a `reason`")
        return self


class ExpectSpec(_Strict):
    name: str
    within: timedelta
    metric: str | None = None
    task: str | None = None

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> timedelta:
        return _duration(v)

    @model_validator(mode="after")
    def _one(self) -> ExpectSpec:
        if (self.metric is None) == (self.task is None):
            raise ValueError("an expectation needs exactly one of `metric` or `task`")
        if self.metric is not None and self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} (use {', '.join(METRICS)})")
        return self


class Scenario(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: Text
    description: Text | None = None
    start: datetime
    duration: timedelta
    roster: str | None = None
    incident: IncidentSpec
    steps: list[Step] = Field(default_factory=list)
    expect: list[ExpectSpec] = Field(default_factory=list)

    @field_validator("start")
    @classmethod
    def _start(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-03-14T21:30:00+08:00")
        if not EARLIEST <= v <= LATEST:
            raise ValueError(f"start must lie between {EARLIEST.year} and {LATEST.year}")
        return ensure_aware(v)

    @field_validator("duration", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> timedelta:
        d = _duration(v)
        if d <= timedelta(0):
            raise ValueError("duration must be longer than zero")
        return d

    def expectations(self) -> list[Expectation]:
        return [Expectation(name=e.name, within=e.within, metric=e.metric, task=e.task) for e in self.expect]


class LoadedScenario:
    """A validated scenario with its source, for located errors in the cross-checks."""

    def __init__(self, scenario: Scenario, doc: YamlDoc, path: Path) -> None:
        self.scenario, self.doc, self.path = scenario, doc, path

    def roster_path(self) -> Path | None:
        if self.scenario.roster is None:
            return None
        return (self.path.parent / self.scenario.roster).resolve()

    def check_against(self, playbooks: PlaybookSet, roster: Roster) -> None:
        """Cross-check names against the playbook and roster before anything runs."""
        sc = self.scenario
        try:
            playbook = playbooks.get(sc.incident.category)
        except Exception as exc:
            raise self.doc.error(("incident", "category"), str(exc)) from None
        people = {p.id for p in roster.people}
        if sc.incident.opened_by not in people:
            raise self.doc.error(("incident", "opened_by"), f"unknown person '{sc.incident.opened_by}'")
        keys = {t.key for stage in playbook.stages.values() for t in stage.tasks}
        for i, step in enumerate(sc.steps):
            if step.at > sc.duration:
                raise self.doc.error(("steps", i, "at"), f"step at {step.at} is after the drill's end "
                                                         f"({sc.duration})")
            for field, pid in (("by", step.by), *(("reviewers", r) for r in step.reviewers)):
                if pid is not None and pid not in people:
                    raise self.doc.error(("steps", i, field), f"unknown person '{pid}'")
            if step.task is not None and step.task not in keys:
                raise self.doc.error(("steps", i, "task"),
                                     f"playbook '{playbook.category}' has no task '{step.task}'")
        for i, exp in enumerate(sc.expect):
            if exp.task is not None and exp.task not in keys:
                raise self.doc.error(("expect", i, "task"), f"playbook '{playbook.category}' has no task '{exp.task}'")


def load_scenario(path: str | Path) -> LoadedScenario:
    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a scenario must be a mapping")
    return LoadedScenario(doc.validate(Scenario), doc, path)
