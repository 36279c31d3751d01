"""On-call rota: who is on call at a moment, and who backs them up (pure; the service loads the shifts).

A rotation hands over daily or weekly at a local time (08:00 in the hospital's zone by default) and walks
its list of people; the backup is the rota's next person. Shifts stored in the database (overrides for swaps
and holidays, imported CSV/iCalendar shifts) beat the rotation while they cover the moment; the most recently
entered one wins. Without a rotation the roster's `on_call` windows decide, as before (and no backup step is added).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from crisis.clock import EARLIEST, LATEST, plausible
from crisis.errors import InputError

BACKUP_TARGET = "on_call_backup"


class Rotation(BaseModel):
    """`rota:` in the roster: people in turn, handing over at `handover` local time."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    people: list[str] = Field(min_length=1)
    period: Literal["daily", "weekly"] = "daily"
    handover: time = time(8, 0)
    start: date  # the local date on which people[0] takes the first shift, at `handover`


@dataclass(frozen=True)
class Shift:
    """A stored window (override or imported) that beats the rotation while it covers `now`."""

    person: str
    start: datetime
    until: datetime
    source: str = "override"

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.until


@dataclass(frozen=True)
class OnCall:
    primary: str
    backup: str | None
    since: datetime | None = None
    until: datetime | None = None
    source: str = "rota"  # rota | override | import | roster


def slot(rot: Rotation, now: datetime, tz: ZoneInfo) -> tuple[int, datetime, datetime]:
    """The index of the shift covering `now` (negative before the start) and its bounds."""
    days = 1 if rot.period == "daily" else 7
    local = now.astimezone(tz)
    elapsed = (local.date() - rot.start).days - (1 if local.time() < rot.handover else 0)
    index = elapsed // days
    first = rot.start + timedelta(days=index * days)
    begin = datetime.combine(first, rot.handover, tz)
    end = datetime.combine(first + timedelta(days=days), rot.handover, tz)
    return index, begin, end


def from_rotation(rot: Rotation, now: datetime, tz: ZoneInfo) -> OnCall:
    index, begin, end = slot(rot, now, tz)
    n = len(rot.people)
    primary = rot.people[index % n]
    backup = rot.people[(index + 1) % n] if n > 1 else None
    return OnCall(primary, backup, begin, end)


def on_call(now: datetime, tz: ZoneInfo, *, rotation: Rotation | None, shifts: Sequence[Shift],
            roster_windows: Sequence[tuple[str, datetime | None, datetime | None]]) -> OnCall:
    """Who is on call at `now`: a covering shift, else the rotation, else the roster's windows."""
    base = from_rotation(rotation, now, tz) if rotation is not None else _from_windows(now, roster_windows)
    covering = [s for s in shifts if s.covers(now)]
    if not covering:
        return base
    shift = covering[-1]
    backup = base.primary if base.primary != shift.person else base.backup
    return OnCall(shift.person, backup if backup != shift.person else None, shift.start, shift.until, shift.source)


def _from_windows(now: datetime, windows: Sequence[tuple[str, datetime | None, datetime | None]]) -> OnCall:
    people = [p for p, _, _ in windows]
    for i, (person, start, until) in enumerate(windows):
        if (start is None or start <= now) and (until is None or now < until):
            nxt = next((p for p in people[i + 1:] + people[:i] if p != person), None)
            return OnCall(person, nxt, start, until, "roster")
    first = people[0]
    return OnCall(first, next((p for p in people if p != first), None), None, None, "roster")


def with_backup(plan: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """An escalation plan ending at the on-call administrator gains one more step, one wait later: the
    backup, when the on-call person has not acknowledged within the last wait."""
    if len(plan) < 2 or plan[-1][0] != "on_call":
        return plan
    wait = plan[-1][1] - plan[-2][1]
    return [*plan, (BACKUP_TARGET, plan[-1][1] + wait)] if wait > 0 else plan


# ----------------------------------------------------------------------------------------------- import
def parse_local(text: str, tz: ZoneInfo, *, where: str) -> datetime:
    """An ISO date-time; one without an offset is the hospital's local time."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a date-time (use e.g. 2026-12-01 08:00)") from None
    aware = dt.replace(tzinfo=tz) if dt.tzinfo is None else dt
    if not (EARLIEST.replace(tzinfo=None) <= dt.replace(tzinfo=None) <= LATEST.replace(tzinfo=None)
            and plausible(aware)):  # (checked naive first: converting year 1 or 9999 may overflow)
        raise InputError(f"{where}: {text!r} must lie between {EARLIEST.year} and {LATEST.year}")
    return aware.astimezone(ZoneInfo("UTC"))


def import_csv(text: str, tz: ZoneInfo, known: dict[str, str]) -> list[Shift]:
    """Rows `person,start,end` (a header row is optional); `known` maps ids and names to person ids."""
    shifts = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].strip().lower() in ("person", "#"):
            continue
        if len(row) < 3:
            raise InputError(f"line {n}: expected person,start,end", line=n)
        person = _person(row[0], known, where=f"line {n}")
        start = parse_local(row[1], tz, where=f"line {n}")
        until = parse_local(row[2], tz, where=f"line {n}")
        shifts.append(_checked(Shift(person, start, until, "import"), where=f"line {n}"))
    return shifts


def import_ics(data: bytes, tz: ZoneInfo, known: dict[str, str]) -> list[Shift]:
    """VEVENTs whose SUMMARY (or first ATTENDEE's CN) names a person; floating times are local."""
    from icalendar import Calendar  # imported here: only `crisis oncall import` needs it

    try:
        cal = Calendar.from_ical(data)
    except ValueError as exc:
        raise InputError(f"not an iCalendar file: {exc}") from None
    shifts = []
    for ev in cal.walk("VEVENT"):
        uid = str(ev.get("UID", "?"))
        name = str(ev.get("SUMMARY", "")).strip()
        attendee = ev.get("ATTENDEE")
        if not name and attendee is not None:
            name = str(getattr(attendee, "params", {}).get("CN", ""))
        if ev.get("DTSTART") is None or ev.get("DTEND") is None:
            raise InputError(f"event {uid}: needs DTSTART and DTEND")
        start, until = (_ics_time(ev.decoded(k), tz) for k in ("DTSTART", "DTEND"))
        shifts.append(_checked(Shift(_person(name, known, where=f"event {uid}"), start, until, "import"),
                               where=f"event {uid}"))
    return shifts


def _ics_time(value: date | datetime, tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):  # an all-day event hands over at local midnight
        value = datetime.combine(value, time(0))
    return (value.replace(tzinfo=tz) if value.tzinfo is None else value).astimezone(ZoneInfo("UTC"))


def _person(text: str, known: dict[str, str], *, where: str) -> str:
    key = text.strip()
    if key not in known:
        raise InputError(f"{where}: unknown person {key!r}")
    return known[key]


def _checked(shift: Shift, *, where: str) -> Shift:
    if shift.until <= shift.start:
        raise InputError(f"{where}: the shift ends before it starts")
    return shift
