"""A playbook for one grade as the CLI, the API and the web library show it (pure: no database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from crisis.engine.fsm import STAGE_NAMES

if TYPE_CHECKING:
    from crisis.playbook import Playbook
    from crisis.severity import Severity


@dataclass
class OutlineTask:
    stage: str
    key: str
    group: str
    title: str
    title_en: str
    required: bool
    anchor: str
    due: timedelta | None  # for the outline's grade; None: no deadline
    escalate: bool = True  # a missed deadline starts the stage's chain


@dataclass
class OutlineStage:
    stage: str
    names: tuple[str, str]
    tasks: list[OutlineTask]
    chain: list[str]  # who is chased, in order, once a deadline of this stage passes
    wait: timedelta  # between chain steps, for the grade
    repeat: int


@dataclass
class PlaybookOutline:
    category: str
    name: str
    severity: str
    stages: list[OutlineStage]

    @property
    def tasks(self) -> list[OutlineTask]:
        return [t for st in self.stages for t in st.tasks]


def playbook_outline(pb: Playbook, severity: Severity) -> PlaybookOutline:
    """A playbook for one grade: per stage its tasks with deadlines and the escalation chain (pure)."""
    stages = []
    for name, spec in pb.stages.items():
        chain = pb.escalation_for(name)
        tasks = [OutlineTask(name, t.key, t.group, t.title.zh, t.title.en, t.required, t.anchor,
                             t.due[severity] if t.due else None, t.escalate) for t in spec.tasks]
        stages.append(OutlineStage(name, STAGE_NAMES.get(name, (name, name)), tasks, list(chain.chain),
                                   chain.wait[severity], chain.repeat))
    return PlaybookOutline(pb.category, pb.name.zh, severity.value, stages)


def outline_json(o: PlaybookOutline) -> dict[str, Any]:
    """The outline as JSON (deadlines and waits as readable durations): the CLI and the API print the same."""
    from crisis.durations import format_duration

    def task(t: OutlineTask) -> dict[str, Any]:
        return {"stage": t.stage, "key": t.key, "group": t.group, "title": t.title, "title_en": t.title_en,
                "required": t.required, "anchor": t.anchor, "due": format_duration(t.due) if t.due else None}

    return {"category": o.category, "name": o.name, "severity": o.severity, "tasks": [task(t) for t in o.tasks],
            "stages": [{"stage": st.stage, "names": list(st.names), "chain": st.chain,
                        "wait": format_duration(st.wait), "repeat": st.repeat,
                        "tasks": [t.key for t in st.tasks]} for st in o.stages]}
