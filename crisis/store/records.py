"""Read records: the rows the read models return (crisis.views), as plain dataclasses.

Why not the SQLModel classes: importing SQLModel, pydantic's model machinery and the SQLAlchemy ORM costs more
than the whole `crisis show` budget (≈ 0.6 s of a 0.3 s target), and validating a model per row is most of a
page's time. A record has exactly the attributes of its table's model, in the same order, so every adapter reads
it the same way and `crisis.jsonout` writes the same JSON (tests/test_records.py holds the two together).

Values arrive raw from the driver (SQLite: ISO text for times, JSON text, 0/1 for booleans; PostgreSQL: naive
UTC datetimes, parsed JSON, booleans) and are turned into what the models hold: aware UTC datetimes, dicts and
lists, booleans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar


@dataclass(slots=True)
class Incident:
    id: int | None
    title: str
    category: str
    source_url: str | None
    signals: dict[str, Any]
    stage: str
    severity: str
    decision: str | None
    cycle: int
    opened_by: str
    opened_at: datetime
    stage_entered_at: datetime
    closed_at: datetime | None
    playbook_version: str
    version: int
    cycle_started_at: datetime | None

    @property
    def cycle_anchor(self) -> datetime:
        """Where the current cycle's clocks run from: the opening, or the reopen after a flare-up."""
        return self.cycle_started_at or self.opened_at


@dataclass(slots=True)
class Task:
    id: int | None
    incident_id: int
    cycle: int
    stage: str
    key: str
    group: str
    title_zh: str
    title_en: str
    required: bool
    assignee: str
    anchor: str
    created_at: datetime
    due_at: datetime | None
    status: str
    done_at: datetime | None
    done_by: str | None
    note: str | None
    escalation_plan: list[Any]
    escalation_level: int
    next_escalation_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None


@dataclass(slots=True)
class Escalation:
    id: int | None
    task_id: int
    incident_id: int
    level: int
    target: str
    recipient: str
    scheduled_at: datetime
    fired_at: datetime
    late_seconds: float
    acked_at: datetime | None = None  # defaults: `tick` builds a just-fired step's record
    acked_by: str | None = None


@dataclass(slots=True)
class Event:
    id: int | None
    incident_id: int | None
    at: datetime
    actor: str
    auth: str | None
    kind: str
    from_state: str | None
    to_state: str | None
    task_id: int | None
    data: dict[str, Any]


@dataclass(slots=True)
class Statement:
    id: int | None
    incident_id: int
    title: str
    body: str
    channel: str
    major: bool
    status: str
    drafted_by: str
    drafted_at: datetime
    released_at: datetime | None
    released_by: str | None
    next_update: str | None
    reviews: list[Any]


TABLES: dict[type, str] = {Incident: "incident", Task: "task", Escalation: "escalation", Event: "event",
                           Statement: "statement"}
R = TypeVar("R")


def utc(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, str):  # SQLite: "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC
        v = datetime.fromisoformat(v)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str | bytes) else v


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _converter(annotation: str) -> Callable[[Any], Any] | None:
    """How a raw driver value becomes the field's value, from the field's (string) annotation."""
    kind = annotation.split(" | ")[0]
    return {"datetime": utc, "bool": _bool, "float": _float}.get(kind) or (
        _json if kind.startswith(("dict", "list")) else None)


@dataclass(frozen=True)
class _Shape:
    columns: tuple[str, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]


def _shape(cls: type) -> _Shape:
    fs = fields(cls)
    conv = tuple((i, c) for i, f in enumerate(fs) if (c := _converter(str(f.type))) is not None)
    return _Shape(tuple(f.name for f in fs), conv)


_SHAPES = {cls: _shape(cls) for cls in TABLES}


def columns(cls: type, alias: str | None = None) -> str:
    """The SELECT list of `cls`'s table, in field order (quoted: `group` and `key` are SQL keywords)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f'{prefix}"{c}"' for c in _SHAPES[cls].columns)


def width(cls: type) -> int:
    return len(_SHAPES[cls].columns)


def build(cls: type[R], row: Sequence[Any]) -> R:
    """A record from the first `width(cls)` values of a row selected with `columns(cls)`."""
    shape = _SHAPES[cls]
    values = list(row[:len(shape.columns)])
    for i, conv in shape.converters:
        values[i] = conv(values[i])
    return cls(*values)


def as_dict(record: Any) -> dict[str, Any]:
    """The record's fields by name, in column order (what a model's `model_dump()` gives)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}
