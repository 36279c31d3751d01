"""Clocks. SystemClock is the only place in the code base that reads the wall clock.

Everything else receives `now` or a Clock, so drills and tests run the same engine
under a VirtualClock that jumps from event to event (or runs N times real time).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

# Dates a person may give (drill starts, on-call windows): beyond them, date arithmetic overflows or a typo hides.
EARLIEST, LATEST = datetime(1971, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)


def plausible(dt: datetime) -> bool:
    """Whether an aware date-time lies between EARLIEST and LATEST (compared in UTC)."""
    return EARLIEST <= dt <= LATEST


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Real time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


class VirtualClock:
    """Manually advanced time for drills and tests; never moves backwards."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_aware(start)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, when: datetime) -> None:
        when = ensure_aware(when)
        if when > self._now:
            self._now = when

    def advance(self, delta: timedelta) -> None:
        self._now = self._now + delta


def ensure_aware(dt: datetime) -> datetime:
    """Refuse naive datetimes: a time without a zone is a bug waiting for daylight saving."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} (a timezone is required)")
    return dt.astimezone(UTC)
