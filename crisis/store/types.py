"""One column type for every timestamp: stored as naive UTC, returned aware, naive input refused.

SQLite has no time-zone type, so aware datetimes would silently come back naive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from json import encoder as json_encoder
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_SEEN_MAX = 4096  # remembered conversions per processor (then forgotten all at once)


class _Memo(dict[Any, Any]):
    """A conversion remembered per value, looked up as `memo[value]`: a hit is a dict look-up with no Python call
    (the processors run on every timestamp of every hot-path row); a miss converts (or raises, remembering
    nothing). None converts to None."""

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        super().__init__({None: None})
        self.convert = convert

    def __missing__(self, value: Any) -> Any:
        out = self.convert(value)
        if len(self) >= _SEEN_MAX:
            self.clear()
            self[None] = None
        self[value] = out
        return out


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"refusing naive datetime {value.isoformat()}: store aware UTC times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, the checks above and SQLite's storage format ("YYYY-MM-DD HH:MM:SS.ffffff", what its DATETIME
        type writes) in one step: every hot-path row binds several timestamps."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        check = self.process_bind_param

        def text(value: Any) -> str:
            if type(value) is datetime and value.tzinfo is UTC:  # already UTC: its text without the "+00:00"
                return value.isoformat(" ", "microseconds")[:26]
            return check(value, dialect).isoformat(" ", "microseconds")  # type: ignore[union-attr]

        # aware time -> its text (equal aware times are the same instant: the same UTC text; a naive one is never
        # stored, so never found, and `check` refuses it): a command binds its `now` a dozen times
        return _Memo(text).__getitem__

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite, SQLite's text parsed once per distinct value (datetimes are immutable, so rows may share one):
        a command reads the same few times on many rows."""
        parse = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or parse is None:
            return parse
        return _Memo(parse).__getitem__

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_bind(dialect: Dialect, process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A JSON column's bind processor, `process`, with a quicker way for dicts and lists on a dialect using the
    default serializer (json.dumps): the same text from C encoder made once, instead of json.dumps building one
    (and its checks) for every value, ~1.5 us of ~3.5 a hot-path row's JSON. Anything else goes to `process`."""
    make = getattr(json_encoder, "c_make_encoder", None)
    if make is None or getattr(dialect, "_json_serializer", None) is not None or dialect.name != "sqlite":
        return process
    d = json.JSONEncoder()  # json.dumps's own settings: ASCII output, ", " and ": "
    # no markers (shared between threads they could collide): a circular value recurses until RecursionError,
    # and then `process` says what json.dumps says ("Circular reference detected")
    encode = make(None, d.default, json_encoder.encode_basestring_ascii, d.indent, d.key_separator,
                  d.item_separator, d.sort_keys, d.skipkeys, d.allow_nan)

    def fast(value: Any) -> Any:
        if type(value) is dict or type(value) is list:
            try:
                return "".join(encode(value, 0))
            except RecursionError:
                pass
        return process(value)

    return fast
