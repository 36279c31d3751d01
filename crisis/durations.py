"""Parse and format durations as written in playbooks and scenarios ("15m", "1h30m", "PT2H", 90)."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_COMPACT = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*"
                      r"(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$", re.I)
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.I)


def parse_duration(value: object) -> timedelta:
    """Return a non-negative timedelta or raise ValueError naming the bad value (never OverflowError:
    `.inf` or `99999999999d` from a file is bad input, not a crash)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"duration must be finite, got {value!r}")
        if value < 0:
            raise ValueError(f"negative duration {value!r}")
        return _delta(value, seconds=value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"invalid duration {value!r} (use e.g. 30m, 2h, 1h30m, 1d, PT2H)")
    text = value.strip()
    for pattern in (_ISO, _COMPACT):
        m = pattern.match(text)
        if m and any(m.groups()):
            d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return _delta(value, days=d, hours=h, minutes=mi, seconds=s)
    raise ValueError(f"invalid duration {value!r} (use e.g. 30m, 2h, 1h30m, 1d, PT2H)")


def _delta(value: object, **parts: float) -> timedelta:
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ValueError(f"duration {value!r} is too long") from None


def format_duration(td: timedelta | float | int | None) -> str:
    """Compact human form: 2d05h30m, 1h05m, 45m, 30s, -10m for negatives; '-' for None."""
    if td is None:
        return "-"
    seconds = int(td.total_seconds()) if isinstance(td, timedelta) else int(td)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:  # keep the minutes: "2d05h30m", not a rounded-down "2d05h"
        return f"{sign}{d}d" + (f"{h:02d}h" if h or m else "") + (f"{m:02d}m" if m else "")
    if h:
        return f"{sign}{h}h{m:02d}m" if m else f"{sign}{h}h"
    if m:
        return f"{sign}{m}m{s:02d}s" if s else f"{sign}{m}m"
    return f"{sign}{s}s"
