"""One JSON encoding: every time in every JSON output is UTC ISO 8601 with Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from helpers import Cli, crisis_env

from crisis import jsonout

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def _times(value) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    return [value] if isinstance(value, str) and ISO.match(value) else []


def test_encode_writes_utc_with_z():
    t = datetime(2026, 3, 14, 13, 0, tzinfo=UTC)
    out = jsonout.encode({"at": t, "s": {"x"}, "text": t.isoformat(), "local": "2026-03-14T21:00:00+08:00",
                          "nested": [{"due": "2026-03-14T13:00:00.500000+00:00"}]})
    assert out == {"at": "2026-03-14T13:00:00Z", "s": ["x"], "text": "2026-03-14T13:00:00Z",
                   "local": "2026-03-14T21:00:00+08:00", "nested": [{"due": "2026-03-14T13:00:00.500000Z"}]}
    assert jsonout.encode(t.astimezone(timezone(timedelta(hours=8)))) != "2026-03-14T13:00:00Z"  # not UTC: kept


def test_show_report_and_list_json_agree(tmp_path, monkeypatch):
    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    cli = Cli(tmp_path)
    iid = cli.json("open", "--title", "t", "--category", "medical_dispute")["incident"]["id"]
    outputs = [cli.json("show", str(iid)), cli.json("report", str(iid)), cli.json("list")]
    times = [t for o in outputs for t in _times(o)]
    assert len(times) > 10
    assert all(t.endswith("Z") for t in times), [t for t in times if not t.endswith("Z")]
