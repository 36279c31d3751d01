"""Text from users is data: the one place it is cleaned and bounded before the service stores it.

Every command that accepts free text (titles, reasons, notes, comments, statement bodies, signal names and
values) passes it through here, so nothing stored can carry terminal escape codes, bidi overrides or line
breaks where a renderer expects one line, and nothing is unboundedly long. Renderers still escape what they
print (see crisis/escaping.py and the CLI): cleaning is not escaping.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from crisis.errors import InputError

TITLE_MAX = 200          # incident and statement titles
REASON_MAX = 1000        # override and regrade reasons
NOTE_MAX = 2000          # notes on tasks, triggers, signals; review comments; timeline entries
BODY_MAX = 20000         # statement bodies
LINE_MAX = 200           # short one-line fields: next update, channel
URL_MAX = 2048
SIGNAL_NAME_MAX = 64
SIGNALS_MAX = 50
SIGNAL_VALUE_MAX = 1e15  # counts of reposts, views, comments: anything larger is a typo

# Line breaks in all their forms (CR LF, NEL, LINE/PARAGRAPH SEPARATOR, VT, FF) and tabs.
_BREAKS = re.compile(r"\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")
# Terminal escape sequences (CSI `ESC [ … m`, OSC `ESC ] … BEL`, two-byte `ESC x`): removed whole, so no
# `[31m` residue is left behind once ESC itself is dropped.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
# Directional embeddings, overrides and isolates ("Trojan source"): they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _strip_controls(text: str) -> str:
    """Drop control characters (C0, DEL, C1, ANSI escape sequences with them) and bidi controls; tabs and
    line breaks are handled by the callers before this."""
    text = _ANSI.sub("", text)
    return "".join(c for c in text if c not in _BIDI and (c == "\n" or unicodedata.category(c) != "Cc"))


def _bounded(text: str, field: str, max_len: int) -> str:
    if len(text) > max_len:
        raise InputError(f"is {len(text)} characters long; at most {max_len} are allowed", field=field,
                         kind="too_long", facts={"n": len(text), "max": max_len})
    return text


def _as_str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"must be text, got {type(value).__name__}", field=field)
    return value


def one_line(value: Any, field: str, *, max_len: int = TITLE_MAX) -> str:
    """A required single-line field (a title): line breaks and tabs become spaces, controls go, runs of
    spaces collapse; empty after cleaning is an error."""
    text = _as_str(value, field).replace("\t", " ")
    text = " ".join(_strip_controls(_BREAKS.sub(" ", text)).split())
    if not text:
        raise InputError("must not be empty", field=field, kind="empty")
    return _bounded(text, field, max_len)


def optional_line(value: Any, field: str, *, max_len: int = LINE_MAX) -> str | None:
    """An optional single-line field; None or blank stays None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return one_line(value, field, max_len=max_len)


def block(value: Any, field: str, *, max_len: int = BODY_MAX) -> str:
    """A required multi-line field (a statement body): line breaks kept (normalised to \\n), tabs become
    spaces, other controls go, surrounding blank space is trimmed."""
    text = _BREAKS.sub("\n", _as_str(value, field).replace("\t", " "))
    text = _strip_controls(text).strip()
    if not text:
        raise InputError("must not be empty", field=field, kind="empty")
    return _bounded(text, field, max_len)


def optional_block(value: Any, field: str, *, max_len: int = NOTE_MAX) -> str | None:
    """An optional multi-line field (a note, a reason, a comment); None or blank stays None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return block(value, field, max_len=max_len)


def signals(value: dict[str, Any] | None) -> dict[str, int | float]:
    """Signal counts by name: names one short line, values finite, non-negative numbers."""
    items = list((value or {}).items())
    if len(items) > SIGNALS_MAX:
        raise InputError(f"{len(items)} signals given; at most {SIGNALS_MAX}", field="signals")
    out: dict[str, int | float] = {}
    for k, v in items:
        if not isinstance(k, str) or not k.strip():
            raise InputError(f"signal name {k!r} must be a non-empty string", field="signals")
        name = one_line(k, "signals", max_len=SIGNAL_NAME_MAX)
        where = f"signals.{name}"
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InputError(f"must be a number, got {v!r}", field=where)
        if not math.isfinite(v):
            raise InputError(f"must be a finite number, got {v!r}", field=where)
        if v < 0:
            raise InputError("must not be negative", field=where)
        if v > SIGNAL_VALUE_MAX:
            raise InputError(f"{v!r} is larger than {SIGNAL_VALUE_MAX:.0e}", field=where)
        out[name] = v
    return out
