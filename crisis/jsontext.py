"""JSON text for files people read (scorecard.json): `json.dumps(doc, ensure_ascii=False, indent=2, default=str)`,
byte for byte, through orjson wherever the two are proven to agree.

Why: the standard library's C encoder does not indent, so indented output runs its pure-Python encoder, which was
a quarter of a drill's report-writing CPU. orjson (C, well kept) writes the same bytes for the plain values a
report document holds — tests/test_jsontext.py holds that with Hypothesis — except in corners checked for first
(then the standard library writes the text, as before): floats below 1e-4 in magnitude (orjson writes 0.00001
where Python writes 1e-05), NaN and infinities (null), ints beyond 64 bits, keys that are not str, and values of
any other type than str, int, float, bool, None, dict, list, tuple and date/time (which, as before, become their
str()).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME  # dates to `default=str`, as json does
_TIMES = (dt.datetime, dt.date, dt.time)
_INF = float("inf")
_INT_MAX = 2**63  # orjson's ints are 64-bit (signed, and unsigned up to 2**64 - 1): stay within both


def indented(doc: Any) -> str:
    """`doc` as indented JSON text (2 spaces, non-ASCII as is, date/time values as their str()), no final
    newline."""
    if _plain(doc):
        try:
            return orjson.dumps(doc, default=str, option=_OPTIONS).decode("utf-8")
        except orjson.JSONEncodeError:  # e.g. a lone surrogate in a str: the standard library's text
            pass
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)


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
