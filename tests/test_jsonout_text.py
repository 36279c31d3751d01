"""crisis.jsonout.indented writes scorecard.json's text through orjson: it must be json.dumps's text, byte for byte, for
anything a document may hold, with the corners where the two differ left to the standard library; and
document_text (the file's text: UTC times then given their Z) must be what `report --json` prints."""

from __future__ import annotations

import datetime as dt
import enum
import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from crisis.jsonout import _plain, document_text, dumps, indented


def _stdlib(doc):
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)


_scalars = (st.none() | st.booleans() | st.integers() | st.text()
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.datetimes(timezones=st.none() | st.timezones()) | st.dates() | st.times())
documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                         | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                         max_leaves=40)


@settings(max_examples=600, deadline=None)
@given(documents)
def test_any_document_is_written_as_the_standard_library_writes_it(doc):
    assert indented(doc) == _stdlib(doc)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-4, allow_infinity=False) | st.floats(max_value=-1e-4, allow_infinity=False)
       | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text())
def test_the_values_left_to_orjson_are_the_ones_it_writes_alike(value):
    """The fast path is taken for these (not just correct by falling back), and agrees."""
    assert _plain({"v": [value]})
    assert indented({"v": [value]}) == _stdlib({"v": [value]})


class Grade(enum.Enum):
    I = "I"  # noqa: E741 (the grade's name)


def test_the_corners_where_orjson_differs_go_to_the_standard_library():
    corners = [1e-05, -3.2e-7, float("nan"), float("inf"), 2**64, {1: "int key"}, Decimal("1.5"), Grade.I,
               "lone \ud800 surrogate", {"nested": [{"deep": 1e-9}]}]
    for value in corners:
        doc = {"v": value}
        assert indented(doc) == _stdlib(doc)
    assert not any(_plain({"v": value}) for value in corners[:-2]) and not _plain(corners[-1])


def test_a_real_report_document_takes_the_fast_path():
    doc = {"incident": {"id": 7, "title": "网传\"术后死亡\"\n第二行", "opened_at": dt.datetime(2026, 3, 14, 13, 30,
                                                                                          tzinfo=dt.UTC)},
           "metrics": {"on_time_ratio": 0.5833333333333334, "time_to_report_s": 300.0, "late": None},
           "tasks": [], "findings": [{"ok": True, "weight": 2}]}
    assert _plain(doc) and indented(doc) == _stdlib(doc)


_times = st.datetimes(timezones=st.just(dt.UTC) | st.timezones()).map(dt.datetime.isoformat)
_plain_values = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                 | st.text() | _times | _times.map(lambda t: f'"{t}"') | _times.map(lambda t: f"at {t}"))
plain_documents = st.recursive(_plain_values, lambda inner: st.lists(inner, max_size=5)
                               | st.dictionaries(st.text(max_size=8) | _times, inner, max_size=5), max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(plain_documents)
def test_a_plain_document_is_written_as_dumps_writes_it(doc):
    """scorecard.json (document_text) and `report --json` (dumps) agree to the character: UTC times end in Z
    where a whole string is one, nowhere else (a time quoted inside a string, a time as a key, another zone)."""
    assert document_text(doc) == dumps(doc)


def test_utc_times_in_a_document_end_in_z():
    doc = {"at": "2026-03-14T13:30:00+00:00", "local": "2026-03-14T21:30:00+08:00",
           "said": 'at "2026-03-14T13:30+00:00"'}
    text = document_text(doc)
    assert '"at": "2026-03-14T13:30:00Z"' in text and "+08:00" in text and '\\"2026-03-14T13:30+00:00\\"' in text
