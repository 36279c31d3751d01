"""One JSON encoding for every JSON the project writes (CLI `--json`, the HTTP API, report data, drill
scorecards): rows, dataclasses, sets and datetimes become plain JSON, and every UTC time is ISO 8601 with
`Z` — also the times that reached the data as ISO strings (audit event data, report context), so
`show --json`, `report --json` and the API agree to the character.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import TypeAdapter
_UTC_SUFFIX = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)\+00:00$")


def _z(value: Any) -> Any:
    if isinstance(value, str):
        m = _UTC_SUFFIX.match(value)
        return m.group(1) + "Z" if m else value
    if isinstance(value, dict):
        return {k: _z(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_z(v) for v in value]
    return value


@cache
def _any() -> TypeAdapter[Any]:
    """pydantic's serializer for any value, built on first use (a CLI command that prints a table never
    loads pydantic for it)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Any)


def encode(value: Any) -> Any:
    """JSON-ready data: pydantic writes aware UTC datetimes with `Z`; UTC ISO strings are given the same."""
    return _z(_any().dump_python(value, mode="json"))


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """The JSON text of `value` (non-ASCII kept readable: reports and titles are Chinese)."""
    return json.dumps(encode(value), ensure_ascii=False, indent=indent)
