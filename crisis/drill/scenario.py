"""Drill scenario files: timed injects and scripted responder actions.

A step is either an `inject` (something happens: signals rise, a media call, a family
arrives on site) or a `do` (a responder acts: complete a task, fire a stage trigger,
acknowledge an escalation, get a statement reviewed and released or rejected at a level,
regrade, mark a task applicable). Leaving out the responders' steps shows what escalates
when nobody acts. A scenario may hold several incidents (`incidents:`, each opened at its own
`at`; steps and expectations name theirs with `incident:`) — a surge competing for the same
people — and its own night on-call rota (`on_call:`, windows as in the roster).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crisis.clock import EARLIEST, LATEST, ensure_aware, plausible
from crisis.durations import parse_duration
from crisis.engine.fsm import DECISIONS, TRIGGERS
from crisis.playbook import PlaybookSet, Text
from crisis.roster import Roster
from crisis.scorecard import METRICS, Expectation
from crisis.yamlsrc import LocatedValueError, YamlDoc, load_yaml

ACTIONS = (*TRIGGERS, "complete", "ack", "statement", "signals", "regrade", "applicable")
MAIN = "main"  # the name of a scenario's only incident when it gives `incident:` rather than `incidents:`


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


MAX_DRILL = timedelta(days=366)  # a drill longer than a year is a typo; bounds every date computed from it


def _duration(v: Any) -> timedelta:
    d = parse_duration(v)
    if d > MAX_DRILL:
        raise ValueError(f"{v!r} is longer than a drill may last ({MAX_DRILL.days} days)")
    return d


class IncidentSpec(_Strict):
    at: timedelta = timedelta(0)  # when it is opened, from the scenario's start
    title: str = Field(min_length=1)
    category: str
    source_url: str | None = None
    severity: str | None = None
    signals: dict[str, float] = Field(default_factory=dict)
    opened_by: str

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, v: Any) -> timedelta:
        return _duration(v)


class Step(_Strict):
    at: timedelta
    incident: str | None = None
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
    reject_at: int | None = Field(default=None, ge=1, le=3)  # the review level that rejects (with `comment`)
    comment: str | None = None

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
            if self.do == "regrade" and not (self.severity and self.reason):
                raise ValueError("regrade needs `severity` and `reason`")
            if self.do == "applicable" and not (self.task and self.reason):
                raise ValueError("applicable needs `task` and `reason`")
            if self.reject_at is not None and (len(self.reviewers) < self.reject_at or not self.comment):
                raise ValueError(f"reject_at {self.reject_at} needs that many `reviewers` and a `comment`")
        if self.override and not self.reason:
            raise ValueError("override needs a `reason`")
        return self


class ExpectSpec(_Strict):
    """One facilitator expectation. Exactly one of:
    `metric` / `task` within a time (from the opening, or `since: reopen` from the last reopen);
    `paged: PERSON` by a time (optionally at `level`); `no_page_at_level: N` (nobody paged at that level,
    optionally for one `task`); `answered: true` (every escalation chain acknowledged, or its task completed,
    within the time of its first page)."""

    name: str
    within: timedelta | None = None
    incident: str | None = None
    metric: str | None = None
    task: str | None = None
    since: Literal["opening", "reopen"] = "opening"
    paged: str | None = None
    level: int | None = Field(default=None, ge=1)
    no_page_at_level: int | None = Field(default=None, ge=1)
    answered: bool = False

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> timedelta | None:
        return None if v is None else _duration(v)

    @model_validator(mode="after")
    def _one(self) -> ExpectSpec:
        kinds = [k for k, on in (("metric", self.metric is not None),
                                 ("task", self.task is not None and self.no_page_at_level is None),
                                 ("paged", self.paged is not None), ("no_page_at_level", self.no_page_at_level),
                                 ("answered", self.answered)) if on]
        if len(kinds) != 1:
            raise ValueError("an expectation needs exactly one of `metric`, `task`, `paged`, `no_page_at_level` "
                             f"or `answered` (got {', '.join(kinds) or 'none'})")
        if self.metric is not None and self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} (use {', '.join(METRICS)})")
        if kinds[0] != "no_page_at_level" and self.within is None:
            raise ValueError(f"a `{kinds[0]}` expectation needs `within`")
        return self


class OnCallSpec(_Strict):
    """A window of the drill's own on-call rota (e.g. the night's 总值班), stored as a shift for the drill."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    person: str
    start: datetime = Field(alias="from")
    until: datetime

    @field_validator("start", "until")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("on-call times need a time zone, e.g. 2026-03-14T22:00:00+08:00")
        return ensure_aware(v)

    @model_validator(mode="after")
    def _order(self) -> OnCallSpec:
        if self.until <= self.start:
            raise ValueError("an on-call window must end after it starts")
        return self


class Scenario(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: Text
    description: Text | None = None
    start: datetime
    duration: timedelta
    roster: str | None = None
    incident: IncidentSpec | None = None
    incidents: dict[str, IncidentSpec] | None = None
    on_call: list[OnCallSpec] | None = None
    steps: list[Step] = Field(default_factory=list)
    expect: list[ExpectSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _incidents(self) -> Scenario:
        if (self.incident is None) == (self.incidents is None):
            raise ValueError("a scenario needs exactly one of `incident` or `incidents`")
        if self.incidents is not None and not self.incidents:
            raise ValueError("`incidents` must name at least one incident")
        names = self.specs()
        for where, items in (("steps", self.steps), ("expect", self.expect)):
            for i, item in enumerate(items):
                if item.incident is None and len(names) > 1:
                    raise LocatedValueError((where, i), "name the incident (`incident:`): this scenario has "
                                                        f"several ({', '.join(names)})")
                if item.incident is not None and item.incident not in names:
                    raise LocatedValueError((where, i, "incident"), f"no incident '{item.incident}' "
                                                                    f"(incidents: {', '.join(names)})")
        return self

    def specs(self) -> dict[str, IncidentSpec]:
        """The scenario's incidents by name (`main` for a single `incident:`)."""
        if self.incidents is not None:
            return dict(self.incidents)
        assert self.incident is not None
        return {MAIN: self.incident}

    def steps_of(self, name: str) -> list[tuple[int, Step]]:
        """One incident's steps with their index in the file (for located refusals)."""
        return [(i, st) for i, st in enumerate(self.steps) if (st.incident or MAIN) == name]

    @field_validator("start")
    @classmethod
    def _start(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-03-14T21:30:00+08:00")
        if not plausible(v):
            raise ValueError(f"start must lie between {EARLIEST.year} and {LATEST.year}")
        return ensure_aware(v)

    @field_validator("duration", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> timedelta:
        d = _duration(v)
        if d <= timedelta(0):
            raise ValueError("duration must be longer than zero")
        return d

    def expectations(self, name: str = MAIN) -> list[Expectation]:
        """The expectations on one incident of the scenario."""
        mine = [e for e in self.expect if (e.incident or MAIN) == name]
        return [Expectation(name=e.name, within=e.within, metric=e.metric, task=e.task, since=e.since,
                            paged=e.paged, level=e.level, no_page_at_level=e.no_page_at_level, answered=e.answered)
                for e in mine]


class LoadedScenario:
    """A validated scenario with its source, for located errors in the cross-checks."""

    def __init__(self, scenario: Scenario, doc: YamlDoc, path: Path) -> None:
        self.scenario, self.doc, self.path = scenario, doc, path

    def roster_path(self) -> Path | None:
        if self.scenario.roster is None:
            return None
        return (self.path.parent / self.scenario.roster).resolve()

    def check_against(self, playbooks: PlaybookSet, roster: Roster) -> None:
        """Cross-check names against the playbooks and roster before anything runs."""
        sc = self.scenario
        people = {p.id for p in roster.people}
        keys: dict[str, set[str]] = {}
        for name, spec in sc.specs().items():
            where = ("incident",) if sc.incident is not None else ("incidents", name)
            try:
                playbook = playbooks.get(spec.category)
            except Exception as exc:
                raise self.doc.error((*where, "category"), str(exc)) from None
            if spec.opened_by not in people:
                raise self.doc.error((*where, "opened_by"), f"unknown person '{spec.opened_by}'")
            if spec.at > sc.duration:
                raise self.doc.error((*where, "at"), f"incident opened at {spec.at}, after the drill's end")
            keys[name] = {t.key for stage in playbook.stages.values() for t in stage.tasks}
        for i, oc in enumerate(sc.on_call or []):
            if oc.person not in people:
                raise self.doc.error(("on_call", i, "person"), f"unknown person '{oc.person}'")
        for i, step in enumerate(sc.steps):
            if step.at > sc.duration:
                raise self.doc.error(("steps", i, "at"), f"step at {step.at} is after the drill's end "
                                                         f"({sc.duration})")
            for field, pid in (("by", step.by), *(("reviewers", r) for r in step.reviewers)):
                if pid is not None and pid not in people:
                    raise self.doc.error(("steps", i, field), f"unknown person '{pid}'")
            opens = sc.specs()[step.incident or MAIN].at
            if step.at < opens:
                raise self.doc.error(("steps", i, "at"), f"step at {step.at} comes before its incident is opened "
                                                         f"({opens})")
            if step.task is not None and step.task not in keys[step.incident or MAIN]:
                raise self.doc.error(("steps", i, "task"), f"no task '{step.task}' in the playbook of incident "
                                                           f"'{step.incident or MAIN}'")
        for i, exp in enumerate(sc.expect):
            if exp.task is not None and exp.task not in keys[exp.incident or MAIN]:
                raise self.doc.error(("expect", i, "task"), f"no task '{exp.task}' in the playbook of incident "
                                                            f"'{exp.incident or MAIN}'")
            if exp.paged is not None and exp.paged not in people:
                raise self.doc.error(("expect", i, "paged"), f"unknown person '{exp.paged}'")


def load_scenario(path: str | Path) -> LoadedScenario:
    path = Path(path)
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a scenario must be a mapping")
    return LoadedScenario(doc.validate(Scenario), doc, path)
