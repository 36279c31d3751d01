"""On-call rota: hand-over at the boundary minute, weekly turns, overrides, imports, backup paging."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from helpers import by

from crisis.clock import VirtualClock
from crisis.errors import InputError
from crisis.roster import Roster
from crisis.rota import Rotation, Shift, import_csv, import_ics, on_call
from crisis.service import CrisisService

SH = ZoneInfo("Asia/Shanghai")
ROT = Rotation(people=["a", "b", "c"], period="daily", handover=time(8, 0), start=date(2026, 11, 1))


def at(d: int, h: int, m: int = 0, s: int = 0) -> datetime:
    return datetime(2026, 11, d, h, m, s, tzinfo=SH).astimezone(UTC)


def who(now: datetime, rot: Rotation = ROT, shifts=()) -> tuple[str, str | None]:
    oc = on_call(now, SH, rotation=rot, shifts=list(shifts), roster_windows=[])
    return oc.primary, oc.backup


def test_daily_handover_at_the_boundary_minute():
    assert who(at(1, 8)) == ("a", "b")
    assert who(at(2, 7, 59, 59)) == ("a", "b")  # a minute before 08:00 the night shift still holds
    assert who(at(2, 8)) == ("b", "c")  # at 08:00 sharp, b takes over
    assert who(at(3, 8)) == ("c", "a")
    assert who(at(4, 8)) == ("a", "b")  # and round again
    assert who(at(1, 7, 59)) == ("c", "a")  # before the first shift, the turn before it


def test_weekly_handover():
    rot = ROT.model_copy(update={"period": "weekly"})
    assert who(at(7, 23), rot)[0] == "a"
    assert who(at(8, 7, 59), rot)[0] == "a"
    assert who(at(8, 8), rot)[0] == "b"


def test_override_beats_the_rota_and_the_latest_override_wins():
    swap = Shift("c", at(2, 8), at(3, 8))
    assert who(at(2, 12), shifts=[swap]) == ("c", "b")  # the scheduled person becomes the backup
    holiday = Shift("a", at(2, 18), at(2, 20))
    assert who(at(2, 19), shifts=[swap, holiday]) == ("a", "b")  # the rota's own person backs up
    assert who(at(3, 8), shifts=[swap]) == ("c", "a")  # the swap ended; c's own turn


def test_import_csv_and_ics():
    known = {"a": "a", "张三": "b", "c": "c"}
    shifts = import_csv("person,start,end\n张三,2026-11-05 08:00,2026-11-06 08:00\n"
                        "c,2026-11-06T08:00+08:00,2026-11-07T08:00+08:00\n", SH, known)
    assert [(s.person, s.start) for s in shifts] == [("b", at(5, 8)), ("c", at(6, 8))]
    with pytest.raises(InputError, match="unknown person"):
        import_csv("nobody,2026-11-05 08:00,2026-11-06 08:00\n", SH, known)
    with pytest.raises(InputError, match="ends before"):
        import_csv("a,2026-11-06 08:00,2026-11-05 08:00\n", SH, known)
    ics = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:c\r\n"
           b"DTSTAMP:20261101T000000Z\r\nDTSTART;TZID=Asia/Shanghai:20261110T080000\r\n"
           b"DTEND;TZID=Asia/Shanghai:20261111T080000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:2\r\n"
           b"SUMMARY:\xe5\xbc\xa0\xe4\xb8\x89\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261111T000000Z\r\n"
           b"DTEND:20261112T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    got = import_ics(ics, SH, known)
    assert [(s.person, s.start, s.until) for s in got] == [
        ("c", at(10, 8), at(11, 8)), ("b", datetime(2026, 11, 11, tzinfo=UTC), datetime(2026, 11, 12, tzinfo=UTC))]


def rota_roster(roster: Roster) -> Roster:
    data = roster.model_dump(by_alias=True)
    data["rota"] = {"people": ["oncall_admin", "oncall_backup"], "handover": "08:00", "start": "2026-03-01"}
    return Roster.model_validate(data)


def test_backup_is_paged_when_on_call_does_not_acknowledge(engine, playbooks, roster):
    roster = rota_roster(roster)
    clock = VirtualClock(datetime(2026, 3, 14, 13, 0, tzinfo=UTC))  # 21:00 local, 03-14: oncall_backup's turn
    svc = CrisisService(engine, playbooks, roster, clock)
    assert svc.on_call().primary == "oncall_backup" and svc.on_call().backup == "oncall_admin"
    svc.add_shifts([Shift("oncall_admin", clock.now(), clock.now() + timedelta(days=1))], principal=by("duty_officer"))
    assert (svc.on_call().primary, svc.on_call().backup, svc.on_call().source) == (
        "oncall_admin", "oncall_backup", "override")
    inc = svc.open_incident(title="t", category="medical_dispute", principal=by("duty_officer"), severity="III")
    while (nxt := svc.next_due()) is not None and nxt < clock.now() + timedelta(hours=6):
        clock.advance_to(nxt)
        svc.tick()
    esc = [(e.task_id, e.target, e.recipient) for e in svc.escalations(inc.id)]
    task = esc[0][0]
    chain = [(t, r) for tid, t, r in esc if tid == task]
    assert chain[-3:] == [("on_call", "oncall_admin"), ("on_call", "oncall_admin"),
                          ("on_call_backup", "oncall_backup")]
    # the backup may acknowledge (paged), and so may anyone on the rota
    svc.acknowledge(task_id=task, principal=by("oncall_backup"))
