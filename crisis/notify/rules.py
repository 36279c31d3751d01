"""Who gets a message through which channel, and when (pure: facts and `now` in, decisions out).

Urgency comes from the kind: escalations (and anything about a grade I–II incident) go through at once;
assignment notices and acknowledgements wait out the recipient's quiet hours and are delivered, batched into
one digest per person and channel, when those end.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

URGENT_KINDS = frozenset({"escalation", "engine_fault", "delivery_failed", "test"})
URGENT_GRADES = frozenset({"I", "II"})


def is_urgent(kind: str, severity: str | None) -> bool:
    return kind in URGENT_KINDS or (severity or "") in URGENT_GRADES


def _hhmm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def quiet_until(now: datetime, quiet: str, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet window covering `now` (e.g. "22:00-07:00" in `tz`), or None outside it."""
    if quiet == "off":
        return None
    start_s, end_s = quiet.split("-")
    start, end = _hhmm(start_s), _hhmm(end_s)
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time()
    crosses = start > end  # 22:00-07:00 runs over midnight
    inside = (t >= start or t < end) if crosses else (start <= t < end)
    if not inside:
        return None
    day = local.date() if (not crosses or t < end) else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tz).astimezone(ZoneInfo("UTC"))


def hold_until(now: datetime, *, kind: str, severity: str | None, quiet: str, tz: ZoneInfo) -> datetime | None:
    """When a non-urgent message may go out (None: at once)."""
    if is_urgent(kind, severity):
        return None
    return quiet_until(now, quiet, tz)


def personal_route(preferred: list[str], available: Collection[str]) -> list[str]:
    """The person's channels in their order, keeping those this deployment has configured."""
    return [c for c in preferred if c in available]
