"""CrisisService commands: what they write, who may run them, and that a failure writes nothing."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from helpers import CATEGORY, START, by, drive_to, finish_stage, leader, non_leader, open_incident, stage_tasks
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from crisis import logs
from crisis.clock import SystemClock
from crisis.errors import CrisisError, Forbidden, InputError, NotFound
from crisis.service import CrisisService
from crisis.store.db import write_session
from crisis.store.models import Escalation, Event, Incident, OutboxMessage, Statement, Task

M = timedelta(minutes=1)
H = timedelta(hours=1)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("incident", "task", "event", "escalation", "statement", "outboxmessage")}


# ------------------------------------------------------------------------- open_incident
@pytest.mark.parametrize(("sev", "report", "evidence"), [
    ("I", 15 * M, 30 * M), ("II", 30 * M, 30 * M), ("III", H, H), ("IV", 2 * H, 2 * H)])
def test_open_incident_creates_monitoring_tasks(svc, roster, sev, report, evidence):
    actor = non_leader(roster)
    inc = svc.open_incident(title="  网帖：手术致残  ", category=CATEGORY, principal=by(actor), severity=sev,
                            source_url="https://weibo.example/1", signals={"reposts": 120, "comments": 33})
    assert (inc.stage, inc.severity, inc.title, inc.opened_by) == ("monitoring", sev, "网帖：手术致残", actor)
    assert inc.opened_at == START and inc.stage_entered_at == START
    assert inc.signals == {"reposts": 120, "comments": 33}
    assert inc.playbook_version == "2026.11"
    tasks = {t.key: t for t in svc.tasks(inc.id)}
    assert set(tasks) == {"compile_report", "preserve_evidence"}
    cr, pe = tasks["compile_report"], tasks["preserve_evidence"]
    assert (cr.stage, cr.group, cr.assignee, cr.required, cr.status) == (
        "monitoring", "monitoring", roster.group_head("monitoring"), True, "open")
    assert (pe.group, pe.assignee, pe.required) == ("monitoring", roster.roles["info_staff"], False)
    assert cr.due_at == START + report and pe.due_at == START + evidence
    assert cr.created_at == START and cr.cycle == 1
    assert cr.next_escalation_at == cr.due_at and cr.escalation_level == 0

    events = svc.timeline(inc.id)
    assert [e.kind for e in events] == ["incident_opened", "task_assigned", "task_assigned"]
    assert (events[0].actor, events[0].from_state, events[0].to_state) == (actor, None, "monitoring")
    assert events[0].data["severity"] == sev and events[0].data["signals"] == {"reposts": 120, "comments": 33}
    assert {e.task_id for e in events[1:]} == {cr.id, pe.id}
    # assignment notifications: one per task per channel, keyed by task
    keys = sorted(m.dedupe_key for m in svc.outbox())
    assert keys == sorted(f"task:{t.id}:assigned:{ch}" for t in (cr, pe) for ch in ("log", "file"))
    assert {m.recipient for m in svc.outbox() if m.payload["task"] == cr.id} == {cr.assignee}


def test_open_incident_default_severity_from_playbook(svc, roster):
    inc = svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)))
    assert inc.severity == "II"
    inc = svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)), severity="一级")
    assert inc.severity == "I"


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"title": "   "}, InputError, "title"),
    ({"category": "fire_alarm"}, NotFound, "no playbook"),
    ({"severity": "V"}, InputError, "severity"),
    ({"signals": {"reposts": -1}}, InputError, "negative"),
    ({"signals": {"reposts": True}}, InputError, "number"),
    ({"signals": {"reposts": "many"}}, InputError, "number"),
    ({"principal": by("ghost")}, Forbidden, "unknown person"),
    ({"principal": by("system")}, Forbidden, "unknown person"),
    ({"principal": by("drill")}, Forbidden, "unknown person"),
])
def test_open_incident_bad_input_writes_nothing(svc, engine, roster, kwargs, error, match):
    before = counts(engine)
    args = {"title": "t", "category": CATEGORY, "principal": by(non_leader(roster)), **kwargs}
    with pytest.raises(error, match=match):
        svc.open_incident(**args)
    assert counts(engine) == before


# ------------------------------------------------------------------------- tasks
def test_complete_task_sets_done_and_second_completion_errors(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    task = svc.find_task(iid, "compile_report")
    clock.advance(40 * M)  # 10 minutes late
    member = roster.groups["monitoring"].members[0]
    done = svc.complete_task(task.id, principal=by(member), note="已报告")
    assert (done.status, done.done_at, done.done_by, done.note) == ("done", clock.now(), member, "已报告")
    assert done.next_escalation_at is None
    stored = svc.find_task(iid, "compile_report")
    assert (stored.status, stored.done_at) == ("done", START + 40 * M)
    ev = [e for e in svc.timeline(iid) if e.kind == "task_done"]
    assert len(ev) == 1 and ev[0].task_id == task.id and ev[0].actor == member
    assert ev[0].data["late_seconds"] == 600.0

    n_events = len(svc.timeline(iid))
    clock.advance(5 * M)
    with pytest.raises(CrisisError, match="already done"):
        svc.complete_task(task.id, principal=by(member))
    again = svc.find_task(iid, "compile_report")
    assert (again.done_at, again.done_by) == (START + 40 * M, member)  # first completion stands
    assert len(svc.timeline(iid)) == n_events


def test_complete_on_time_has_zero_late_seconds(svc, roster, clock):
    iid = open_incident(svc, severity="II")
    task = svc.find_task(iid, "compile_report")
    clock.advance(5 * M)
    svc.complete_task(task.id, principal=by(roster.group_head("monitoring")))
    (ev,) = [e for e in svc.timeline(iid) if e.kind == "task_done"]
    assert ev.data["late_seconds"] == 0.0


def test_complete_task_permissions(svc, roster):
    iid = open_incident(svc)
    task = svc.find_task(iid, "compile_report")
    outsider = roster.groups["logistics"].members[-1]
    assert outsider not in roster.groups["monitoring"].everyone and not roster.is_leadership(outsider)
    with pytest.raises(Forbidden):
        svc.complete_task(task.id, principal=by(outsider))
    assert svc.find_task(iid, "compile_report").status == "open"
    with pytest.raises(NotFound):
        svc.complete_task(99999, principal=by(leader(roster)))
    # leadership and the duty officer may complete any group's task
    assert svc.complete_task(task.id, principal=by(roster.roles["duty_officer"])).status == "done"


def test_stage_tasks_created_on_entry(svc, roster, clock):
    iid = open_incident(svc, severity="III")
    assert {t.stage for t in svc.tasks(iid)} == {"monitoring"}
    finish_stage(svc, iid)
    clock.advance(50 * M)
    svc.fire(iid, "report", principal=by(non_leader(roster)))
    reported = stage_tasks(svc, iid, "reported")
    assert {t.key for t in reported} == {"assess_severity", "verify_facts"}
    for t in reported:
        assert t.created_at == clock.now() and t.due_at == clock.now() + 2 * H  # grade III
    assert {t.key: t.assignee for t in reported} == {"assess_severity": roster.leadership_head(),
                                                    "verify_facts": roster.group_head("response")}
    assigned = [e for e in svc.timeline(iid) if e.kind == "task_assigned" and e.at == clock.now()]
    assert {e.task_id for e in assigned} == {t.id for t in reported}


def test_find_task_unknown_key_lists_keys(svc):
    iid = open_incident(svc)
    with pytest.raises(NotFound, match="compile_report, preserve_evidence"):
        svc.find_task(iid, "nope")
    with pytest.raises(NotFound, match="compile_report, preserve_evidence"):  # the drill's prebuilt read
        svc.task_id(iid, "nope")
    assert svc.task_id(iid, "compile_report") == svc.find_task(iid, "compile_report").id


# ------------------------------------------------------------------------- signals and notes
def test_update_signals_merges_and_records(svc, roster, clock):
    iid = open_incident(svc, signals={"reposts": 10, "comments": 2})
    version = svc.incident(iid).version
    clock.advance(10 * M)
    inc = svc.update_signals(iid, {"reposts": 500, "media_calls": 1}, principal=by(non_leader(roster)), note="热搜")
    assert inc.signals == {"reposts": 500, "comments": 2, "media_calls": 1}
    assert svc.incident(iid).signals == inc.signals
    assert svc.incident(iid).version == version + 1
    (ev,) = [e for e in svc.timeline(iid) if e.kind == "signals_updated"]
    assert ev.actor == non_leader(roster) and ev.at == clock.now()
    assert ev.data == {"before": {"reposts": 10, "comments": 2}, "after": inc.signals, "note": "热搜"}


def test_update_signals_bad_input_changes_nothing(svc, engine, roster):
    iid = open_incident(svc, signals={"reposts": 10})
    before = counts(engine)
    with pytest.raises(InputError):
        svc.update_signals(iid, {"reposts": 20, "likes": -3}, principal=by(non_leader(roster)))
    assert svc.incident(iid).signals == {"reposts": 10}
    assert counts(engine) == before
    with pytest.raises(NotFound):
        svc.update_signals(424242, {"reposts": 1}, principal=by(non_leader(roster)))


def test_note_records_free_event(svc, roster, clock):
    iid = open_incident(svc)
    clock.advance(3 * M)
    svc.note(iid, "media_call", "记者来电询问", principal=by(non_leader(roster)), outlet="晚报")
    ev = svc.timeline(iid)[-1]
    assert (ev.kind, ev.actor, ev.at) == ("media_call", non_leader(roster), clock.now())
    assert ev.data == {"text": "记者来电询问", "outlet": "晚报"}


def test_events_record_actor_and_states(svc, roster):
    iid = open_incident(svc)
    drive_to(svc, iid, "assessing")
    changes = [(e.actor, e.from_state, e.to_state) for e in svc.timeline(iid) if e.kind == "stage_changed"]
    assert changes == [(leader(roster), "monitoring", "reported"), (leader(roster), "reported", "assessing")]
    for e in svc.timeline(iid):
        assert e.incident_id == iid and e.actor


# ------------------------------------------------------------------------- audit trail is append-only
def test_event_table_refuses_update_and_delete(svc, engine):
    iid = open_incident(svc)
    n = len(svc.timeline(iid))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE event SET actor = 'someone_else'"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM event WHERE id = 1"))
    with pytest.raises(DBAPIError, match="append-only"), write_session(engine) as s:
        ev = s.get(Event, 1)
        assert ev is not None
        ev.kind = "forged"
        s.add(ev)
    events = svc.timeline(iid)
    assert len(events) == n and events[0].kind == "incident_opened"
    assert {e.actor for e in events} != {"someone_else"}
    # appending still works
    svc.note(iid, "check", "still appendable", principal=by(leader(svc.roster)))
    assert len(svc.timeline(iid)) == n + 1


# ------------------------------------------------------------------------- datetimes
def test_all_datetimes_come_back_aware_utc(svc, engine, roster, clock):
    iid = open_incident(svc, severity="I")
    drive_to(svc, iid, "reported")
    clock.advance(2 * H)
    svc.tick()
    st = svc.draft_statement(iid, title="情况通报", body="后续进展将及时通报。",
                             principal=by(roster.roles["spokesperson"]))
    assert st.id is not None
    seen = 0
    with write_session(engine) as s:
        for model in (Incident, Task, Event, Escalation, Statement, OutboxMessage):
            for row in s.exec(text(f"SELECT id FROM {model.__tablename__}")).all():  # type: ignore[call-overload]
                obj = s.get(model, row[0])
                for name, value in obj.model_dump().items():
                    if isinstance(value, datetime):
                        assert value.tzinfo is not None and value.utcoffset() == timedelta(0), (model, name)
                        seen += 1
    assert seen > 20
    # stored as naive UTC wall time in SQLite
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT opened_at FROM incident WHERE id = :i"), {"i": iid}).scalar_one()
    assert str(raw).startswith("2026-03-14 13:00:00")


def test_other_zone_input_is_normalised_to_utc(svc, roster):
    shanghai = timezone(timedelta(hours=8))
    inc = svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)),
                            now=datetime(2026, 3, 14, 21, 0, tzinfo=shanghai))
    stored = svc.incident(inc.id)
    assert stored.opened_at == START and stored.opened_at.tzinfo is not None
    assert stored.opened_at.utcoffset() == timedelta(0)


def test_naive_datetimes_refused(svc, engine, roster):
    before = counts(engine)
    with pytest.raises(ValueError, match="naive"):
        svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)), now=datetime(2026, 3, 14, 13))
    assert counts(engine) == before
    iid = open_incident(svc)
    # the column type itself refuses a naive value, even bypassing the service
    with pytest.raises(StatementError, match="naive"), write_session(engine) as s:
        s.add(Event(incident_id=iid, at=datetime(2026, 3, 14, 13), principal=by("system"), kind="x", data={}))
    assert len(svc.timeline(iid)) == 3


# ------------------------------------------------------------------------- atomicity
def test_outbox_collision_rolls_back_whole_command(svc, engine, roster):
    """A failure at the very end (the outbox insert) leaves no incident, task or event behind."""
    with write_session(engine) as s:
        s.add(OutboxMessage(dedupe_key="task:1:assigned:file", channel="file", recipient="x", subject="s",
                            body="b", created_at=START))
    before = counts(engine)
    with pytest.raises(IntegrityError):
        svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)))
    assert counts(engine) == before
    assert svc.incidents() == []


def test_failure_mid_transition_leaves_no_partial_rows(svc, engine, roster, monkeypatch):
    iid = open_incident(svc)
    before = counts(engine)
    inc_before = svc.incident(iid).model_dump()
    tasks_before = [t.model_dump() for t in svc.tasks(iid)]

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(svc, "_enter_stage", boom)  # after the old stage's tasks were waived
    with pytest.raises(RuntimeError):
        svc.fire(iid, "report", principal=by(leader(roster)), override=True, reason="r", severity="I")
    assert counts(engine) == before
    assert svc.incident(iid).model_dump() == inc_before
    assert [t.model_dump() for t in svc.tasks(iid)] == tasks_before


def test_audit_log_lines_only_after_commit(engine, playbooks, roster, clock, monkeypatch):
    buf = io.StringIO()
    logs.configure(buf)
    svc = CrisisService(engine, playbooks, roster, clock)
    iid = open_incident(svc)
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["incident_opened", "task_assigned", "task_assigned"]
    assert lines[0]["incident"] == iid and lines[0]["actor"] == non_leader(roster)
    buf.truncate(0)
    buf.seek(0)
    monkeypatch.setattr(svc, "_enter_stage", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        svc.fire(iid, "report", principal=by(leader(roster)), override=True, reason="r")
    assert buf.getvalue() == ""


# ------------------------------------------------------------------------- clock injection
def test_system_clock_under_freezegun(engine, playbooks, roster):
    svc = CrisisService(engine, playbooks, roster, SystemClock())
    with freeze_time("2026-05-01 08:30:00", tz_offset=0) as frozen:
        inc = svc.open_incident(title="t", category=CATEGORY, principal=by(non_leader(roster)), severity="II")
        assert inc.opened_at == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
        assert svc.incident(inc.id).opened_at == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
        task = svc.find_task(inc.id, "compile_report")
        assert task.due_at == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
        assert svc.tick() == []
        frozen.tick(timedelta(minutes=31))
        fired = svc.tick()
        assert {e.task_id for e in fired} == {task.id, svc.find_task(inc.id, "preserve_evidence").id}
        (esc,) = [e for e in fired if e.task_id == task.id]
        assert esc.level == 1 and esc.fired_at == datetime(2026, 5, 1, 9, 1, tzinfo=UTC)
        assert esc.late_seconds == 60.0


def test_next_deadlines_per_incident_aware(svc, roster, clock):
    a = open_incident(svc, severity="I")  # compile_report due 15m
    clock.advance(10 * M)
    b = open_incident(svc, severity="IV")  # due 2h after its opening
    got = svc.next_deadlines()
    assert got == {a: START + 15 * M, b: START + 10 * M + 2 * H}
    assert all(v.tzinfo is not None and v.utcoffset() == timedelta(0) for v in got.values())
    svc.complete_task(svc.find_task(a, "compile_report").id, principal=by(leader(roster)))
    assert svc.next_deadlines()[a] == START + 30 * M  # preserve_evidence
    drive_to(svc, b, "closed")
    assert b not in svc.next_deadlines()
