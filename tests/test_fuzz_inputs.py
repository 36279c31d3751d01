"""Fuzzed playbook, roster and scenario files: random mutations of the shipped ones must load, or fail with a
located one-line InputError, never another exception and never a hang (each case is bounded in time)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import DRILLS_DIR, PLAYBOOKS_DIR, ROSTER_PATH, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crisis.drill.scenario import load_scenario
from crisis.errors import InputError
from crisis.playbook import check_roster, load_playbooks
from crisis.roster import load_roster

SHIPPED_PLAYBOOKS = load_playbooks(PLAYBOOKS_DIR)
SHIPPED_ROSTER = load_roster(ROSTER_PATH)
CASE_SECONDS = 5.0

# Text that means something to YAML or to our schemas, and values that broke loaders before.
TOKENS = [":", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!python/object:os.system ", "!!binary ", "|", ">",
          "'", '"', "#", "\n", "  ", "\t", "? ", "~", "null", ".inf", "-.inf", ".nan", "-1", "0", "1e400",
          "99999999999999999999", "99999999d", "PT2H", "1h30m", "2026-02-30", "2026-03-14T21:30:00+08:00",
          "9999-12-31T23:59:59+00:00", "I", "V", "\x00", "\x1b[31m", "[/]", "é", "中文", "true", "yes", "on", "key",
          "due", "wait", "group", "role", "stages", "tasks", "chain", "at", "do", "by", "steps", "incident"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """A few random edits of `text`: delete, insert, replace a span, duplicate or drop or swap lines, re-indent."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line", "swap", "indent"]))
        lines = text.splitlines(keepends=True) or [""]
        if kind in ("dup_line", "drop_line", "swap", "indent"):
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(i, lines[j])
            elif kind == "drop_line":
                del lines[i]
            elif kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = " " * draw(st.integers(0, 12)) + lines[i].lstrip(" ")
            text = "".join(lines)
            continue
        pos = draw(st.integers(0, len(text)))
        end = min(len(text), pos + draw(st.integers(0, 40)))
        new = "" if kind == "delete" else draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)))
        text = text[:pos] + new + (text[end:] if kind != "insert" else text[pos:])
    return text


def _check(path: Path, load: Callable[[Path], object]) -> None:
    try:
        with time_limit(CASE_SECONDS, f"loading a fuzzed {path.name}"):
            load(path)
    except InputError as exc:
        message = str(exc)
        assert exc.file is not None and "\n" not in message, message
        assert message.startswith(exc.file)


def _fuzz(name: str, text: str, load: Callable[[Path], object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        path = folder / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _check(path, load)


def _playbook(path: Path) -> None:
    check_roster(load_playbooks(path.parent), SHIPPED_ROSTER)


def _roster(path: Path) -> None:
    check_roster(SHIPPED_PLAYBOOKS, load_roster(path))


def _scenario(path: Path) -> None:
    loaded = load_scenario(path)
    roster = load_roster(loaded.roster_path()) if loaded.scenario.roster else SHIPPED_ROSTER
    loaded.check_against(SHIPPED_PLAYBOOKS, roster)


FUZZ = settings(max_examples=int(os.environ.get("CRISIS_FUZZ_EXAMPLES", 40)), deadline=None,
                derandomize=not os.environ.get("CRISIS_FUZZ_EXAMPLES"),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("source", sorted(PLAYBOOKS_DIR.glob("*.yaml"))[:3], ids=lambda p: p.name)
@FUZZ
@given(data=st.data())
def test_fuzzed_playbooks(source, data):
    _fuzz(source.name, data.draw(mutated(source.read_text("utf-8"))), _playbook)


@FUZZ
@given(text=mutated(ROSTER_PATH.read_text("utf-8")))
def test_fuzzed_roster(text):
    _fuzz("roster.yaml", text, _roster)


@pytest.mark.parametrize("source", sorted(DRILLS_DIR.glob("*.yaml"))[:2], ids=lambda p: p.name)
@FUZZ
@given(data=st.data())
def test_fuzzed_scenarios(source, data):
    text = source.read_text("utf-8").replace("roster: ../roster.yaml", f"roster: {ROSTER_PATH}")
    _fuzz(source.name, data.draw(mutated(text)), _scenario)
