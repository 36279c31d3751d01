"""One JSON encoding for every JSON the project writes (CLI `--json`, the HTTP API, report data, drill
scorecards): rows, dataclasses, sets and datetimes become plain JSON, and every UTC time is ISO 8601 with
`Z` — also the times that reached the data as ISO strings (audit event data, report context), so
`show --json`, `report --json` and the API agree to the character.

Indented text (every `--json` of the CLI, and scorecard.json) is written by `indented`: the bytes of
`json.dumps(doc, ensure_ascii=False, indent=2, default=str)`, through orjson wherever the two are proven to
agree. Why: the standard library indents only in its pure-Python encoder, which was a quarter of a drill's
report-writing CPU; orjson (C, well kept) writes the same bytes for plain values (tests/test_jsonout_text.py
holds that with Hypothesis) except in corners checked for first, then left to the standard library: floats
below 1e-4 in magnitude (orjson writes 0.00001 where Python writes 1e-05), NaN and infinities (null), ints
beyond 64 bits, keys that are not str, values of any other type than str, int, float, bool, None, dict,
list, tuple and date/time (which become their str()), and a str orjson refuses (a lone surrogate).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import TypeAdapter
_UTC_SUFFIX = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)\+00:00$")
_UTC_STRING = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)\+00:00"(?!:)')  # a whole JSON str value


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
    if indent == 2:
        return indented(encode(value))
    return json.dumps(encode(value), ensure_ascii=False, indent=indent)


_TIMES = (dt.datetime, dt.date, dt.time)
_INF = float("inf")
_INT_MAX = 2**63  # orjson's ints are 64-bit (signed, and unsigned up to 2**64 - 1): stay within both


def indented(doc: Any) -> str:
    """`doc` as indented JSON text (2 spaces, non-ASCII as is, date/time values as their str()), no final
    newline. orjson is imported here, on first use: ~11 ms that a command printing a table never pays."""
    if _plain(doc):
        import orjson

        try:
            return orjson.dumps(doc, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME
                                ).decode("utf-8")  # (dates passed to `default=str`, as json.dumps does)
        except orjson.JSONEncodeError:  # e.g. a lone surrogate in a str: the standard library's text
            pass
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)


def document_text(doc: Any) -> str:
    """`dumps(doc)`'s text for a document of plain JSON values (str, int, float, bool, None, dict, list), such as a
    report document (scorecard.json): `indented`, then every JSON string value that is a whole UTC ISO time given
    its `Z`, the values `_z` rewrites (a quote inside a string is escaped, so only whole strings match; a key is
    followed by its colon, and `_z` leaves keys alone). Why not `dumps`: pydantic's walk over every value of a
    drill incident's document costs ~8 ms, this ~0.6 ms."""
    return _UTC_STRING.sub(r'"\1Z"', indented(doc))


def _plain(doc: Any) -> bool:
    """True when orjson and json.dumps are known to write `doc` alike (see the module's docstring). A loop over
    a stack, not recursion: it runs over every value of every report document, so it is kept cheap."""
    stack = [doc]
    pop, extend = stack.pop, stack.extend
    while stack:
        value = pop()
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is dict:
            for key in value:
                if type(key) is not str:
                    return False
            extend(value.values())
        elif kind is list or kind is tuple:
            extend(value)
        elif kind is int:
            if not -_INT_MAX <= value < _INT_MAX:
                return False
        elif kind is float:
            if not (value == 0.0 or 1e-4 <= abs(value) < _INF):
                return False
        elif kind not in _TIMES:
            return False
    return True
