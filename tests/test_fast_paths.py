"""The hot paths' shortcuts give exactly what the general paths give: audit lines written in one go match
structlog's own rendering byte for byte; the cached time conversions and the JSON encoder store the same text
and read the same values, and still refuse what they refused."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import structlog
from sqlalchemy import JSON
from sqlalchemy.dialects import sqlite

from crisis import logs
from crisis.store.types import UTCDateTime, json_bind

AT = datetime(2026, 5, 1, 8, 30, 0, 1234, tzinfo=UTC)
EVENTS = [
    ("stage_changed", {"incident": 1, "actor": "张三", "auth": None, "at": AT.isoformat(), "from_state": "report",
                       "to_state": "assess", "task": None, "trigger": "assess", "waived": [3, 4], "note": "a\n\"b\""}),
    # "level" in the data: structlog overwrites it in place with the log level; "msg" likewise with the event
    ("statement_reviewed", {"incident": 2, "level": 2, "msg": "x", "at": AT, "approve": True, "score": 1.5}),
    ("escalated", {"incident": None, "nested": {"k": [1, {"z": "中"}]}}),
]


def _by_structlog(events: list[tuple[str, dict[str, object]]]) -> str:
    buf = io.StringIO()
    logs.configure(buf)
    log = logs.get_logger()
    for event, kw in events:
        log.info(event, **kw)
    return buf.getvalue()


class _Counted(io.StringIO):
    writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def _fast(events: list[tuple[str, dict[str, object]]]) -> str:
    buf = _Counted()
    logs.configure(buf)
    logs.info_lines(logs.get_logger(), events)
    assert buf.writes <= 2  # one print: the lines, then its newline
    return buf.getvalue()


def test_audit_lines_in_one_write_match_structlog_byte_for_byte():
    expected = _by_structlog(EVENTS)
    assert _fast(EVENTS) == expected
    first, second, _ = (json.loads(x) for x in expected.splitlines())
    assert list(first)[-2:] == ["level", "msg"] and first["msg"] == "stage_changed"
    assert second["level"] == "info" and second["msg"] == "statement_reviewed"  # overwritten where they were
    assert list(second)[:3] == ["incident", "level", "msg"]
    assert "张三" in expected  # not escaped: ensure_ascii=False
    assert _fast([]) == ""


def test_audit_lines_take_context_variables_and_other_configurations():
    structlog.contextvars.bind_contextvars(request="r1", incident=99)  # the line's own "incident" wins
    try:
        expected = _by_structlog(EVENTS)
        assert _fast(EVENTS) == expected
        assert json.loads(expected.splitlines()[0])["request"] == "r1"
    finally:
        structlog.contextvars.clear_contextvars()
    with structlog.testing.capture_logs() as captured:  # another chain: the calls go through it
        logs.info_lines(logs.get_logger(), EVENTS[:1])
    assert captured == [{**EVENTS[0][1], "event": "stage_changed", "log_level": "info"}]
    logs.configure(io.StringIO())


def test_cached_time_binding_stores_the_utc_instant_and_refuses_naive_times():
    d = sqlite.dialect()
    bind = UTCDateTime().dialect_impl(d).bind_processor(d)
    shanghai = AT.astimezone(timezone(timedelta(hours=8)))
    assert bind(AT) == "2026-05-01 08:30:00.001234"
    assert bind(shanghai) == bind(AT)  # the same instant, found in the cache or not
    assert bind(datetime(2026, 5, 1, 0, 0, tzinfo=timezone(timedelta(hours=8)))) == "2026-04-30 16:00:00.000000"
    assert bind(None) is None
    with pytest.raises(ValueError, match="naive"):
        bind(AT.replace(tzinfo=None))  # naive, although an equal-looking aware time is cached
    with pytest.raises(TypeError):
        bind("2026-05-01")
    read = UTCDateTime().dialect_impl(d).result_processor(d, None)
    got = read("2026-05-01 08:30:00.001234")
    assert got == AT and got.tzinfo is UTC and read("2026-05-01 08:30:00.001234") is got
    assert read(None) is None


def test_json_binding_writes_what_json_dumps_writes():
    d = sqlite.dialect()
    bind = json_bind(d, JSON().bind_processor(d))
    for value in ({"a": [1, 2.5, float("inf"), None, True, "中\n\"x"], "b": {"c": 1e100}}, [], {}, [[{"k": -0.0}]]):
        assert bind(value) == json.dumps(value)
    assert bind(None) == "null" and bind("s") == '"s"'
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        bind(loop)
    with pytest.raises(TypeError, match="not JSON serializable"):
        bind({"a": object()})


def test_the_service_reads_shifts_inside_its_sqlite_write_transaction(svc, clock):
    """The command transaction on SQLite is not a SQLAlchemy Connection: the helpers that take a Session or a
    connection (who is on call, what a stale caller missed) take it too, as the tick's Connection."""
    with svc._core() as (conn, _tx):
        assert type(conn).__name__ == "_SQLiteWrite"
        duty = svc._on_call(conn, clock.now())
        assert svc._changes(conn, 1, 1) == []  # no such incident: nothing changed
    with svc.engine.begin() as conn:
        assert svc._on_call(conn, clock.now()) == duty
