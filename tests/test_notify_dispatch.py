"""Delivery that cannot stall: a hung endpoint and a failing one next to a healthy one; timeout, back-off,
the person's next channel, the fallback page to the on-call administrator; quiet hours and digests under a
virtual clock."""

from __future__ import annotations

import errno
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import chatservers as cs
import pytest
from helpers import by
from sqlalchemy import insert
from sqlmodel import Session, select

from crisis.clock import VirtualClock
from crisis.notify.channels import DeliveryError, FileChannel, MemoryChannel
from crisis.notify.chat import DingTalkRobot, JsonWebhook, WeComRobot
from crisis.notify.dispatch import Dispatcher, Policy
from crisis.notify.messages import Renderer
from crisis.notify.outbox import Routing, messages
from crisis.roster import Roster
from crisis.service import CrisisService
from crisis.store.db import make_engine
from crisis.store.models import OutboxMessage

SH = ZoneInfo("Asia/Shanghai")


def local(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(UTC)


def with_people(roster: Roster, **prefs: list[str]) -> Roster:
    data = roster.model_dump(by_alias=True)
    for p in data["people"]:
        if p["id"] in prefs:
            p["channels"] = prefs[p["id"]]
            p["contacts"] = {**p["contacts"], "phone": "13900000000"}
    return Roster.model_validate(data)


@pytest.fixture()
def platforms():
    with cs.running() as state:
        yield state


def queue(engine, roster, routing, now, *, recipient, key, kind="escalation", severity="II"):
    rows = messages(kind=kind, key=key, recipient=recipient, incident_id=None, now=now, roster=roster,
                    routing=routing, facts={"severity": severity, "incident": 1, "title": "t", "task": 1,
                                            "task_zh": "核实", "task_en": "Verify", "overdue_s": 300})
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), rows)


def rows(svc: CrisisService) -> dict[str, OutboxMessage]:
    return {m.dedupe_key: m for m in svc.outbox()}


def test_hung_and_failing_endpoints_do_not_hold_up_the_others(engine, playbooks, roster, platforms):
    roster = with_people(roster, info_staff=["webhook"], liaison=["wecom"], commentator=["dingtalk"],
                         legal=["webhook", "wecom"])
    clock = VirtualClock(local(2026, 11, 26, 10))
    record = MemoryChannel("log")
    routing = Routing(channels=("log",), personal=frozenset({"webhook", "wecom", "dingtalk"}), tz=SH)
    chans = {"log": record,
             "webhook": JsonWebhook(f"{platforms.url}/hang", timeout=0.3),  # hangs: the socket timeout ends it
             "wecom": WeComRobot(f"{platforms.url}/wecom?key={cs.WECOM_KEY}", timeout=2),
             "dingtalk": DingTalkRobot(f"{platforms.url}/fail", timeout=2)}  # answers 500
    svc = CrisisService(engine, playbooks, roster, clock, routing=routing)
    for who in ("info_staff", "liaison", "commentator", "legal"):
        queue(engine, roster, routing, clock.now(), recipient=who, key=f"esc:{who}")
    d = Dispatcher(engine, chans, Renderer(roster, SH), clock, routing=routing,
                   policy=Policy(timeout=0.3, max_attempts=2, backoff=60), on_call=lambda now: svc.on_call(now).primary)

    first = d.drain(max_seconds=10)
    got = platforms.of("wecom")
    # on time: sent while the hung webhook waited out its 0.3 s timeout (or before it arrived), never after it;
    # the two requests leave together, so which one reaches the server first is not fixed
    assert len(got) == 1 and platforms.hang_at and got[0].at < platforms.hang_at[0] + 0.3
    assert first.delivered == 5 and first.retrying == 3  # 4 record copies + liaison's wecom
    r = rows(svc)
    for key in ("esc:info_staff:webhook", "esc:legal:webhook", "esc:commentator:dingtalk"):
        assert r[key].attempts == 1 and r[key].delivered_at is None and r[key].failed_at is None
        assert r[key].next_attempt_at == clock.now() + timedelta(seconds=60)
    assert "timed out" in r["esc:info_staff:webhook"].last_error
    assert "HTTP 500" in r["esc:commentator:dingtalk"].last_error

    clock.advance(timedelta(seconds=59))
    assert d.drain(max_seconds=5).delivered == 0  # backing off: nothing is tried early
    clock.advance(timedelta(seconds=1))
    d.drain(max_seconds=10)
    r = rows(svc)
    assert all(r[k].failed_at == clock.now() for k in ("esc:info_staff:webhook", "esc:commentator:dingtalk"))
    # legal's next own channel took over; the others' failures paged the on-call administrator
    assert r["esc:legal:wecom"].delivered_at == clock.now()
    pages = [m for m in record.delivered if m.kind == "delivery_failed"]
    assert {(m.recipient, m.facts["recipient"]) for m in pages} == {
        ("oncall_admin", "info_staff"), ("oncall_admin", "commentator")}
    assert "孙专员" in next(m.subject for m in pages if m.facts["recipient"] == "commentator")


def test_failed_and_held_are_visible(engine, playbooks, roster):
    clock = VirtualClock(local(2026, 11, 26, 23, 30))
    routing = Routing(channels=("memory",), tz=SH)
    svc = CrisisService(engine, playbooks, roster, clock, routing=routing)
    queue(engine, roster, routing, clock.now(), recipient="liaison", key="task:1", kind="task_assigned",
          severity="IV")
    held = svc.outbox(held=True)
    assert [m.held_until for m in held] == [local(2026, 11, 27, 7)]


def test_quiet_hours_hold_notices_into_one_digest_and_let_escalations_through(engine, playbooks, roster):
    clock = VirtualClock(local(2026, 11, 26, 22, 30))
    routing = Routing(channels=("memory",), tz=SH)
    svc = CrisisService(engine, playbooks, roster, clock, routing=routing)
    memory = MemoryChannel("memory")
    d = Dispatcher(engine, {"memory": memory}, Renderer(roster, SH), clock, routing=routing)
    inc = svc.open_incident(title="夜间投诉", category="medical_dispute", principal=by("duty_officer"), severity="III")
    first_due = svc.next_due()
    clock.advance_to(first_due - timedelta(minutes=30))
    assert clock.now() >= local(2026, 11, 26, 22, 30)
    someone = svc.outbox()[0].recipient  # a second notice for one person: both go in one digest
    queue(engine, roster, routing, clock.now(), recipient=someone, key="task:x", kind="task_assigned", severity="IV")
    d.drain()
    assert memory.delivered == []  # grade III assignment notices wait for the morning
    clock.advance_to(svc.next_due())  # a deadline passes in the night: its escalation goes at once
    night = clock.now()
    assert night < local(2026, 11, 27, 7)
    fired = svc.tick()
    d.drain()
    assert fired and {m.kind for m in memory.delivered} == {"escalation"}
    assert all(m.delivered_at == night for m in svc.outbox() if m.kind == "escalation")

    clock.advance_to(local(2026, 11, 27, 6, 59))
    d.drain()
    assert not [m for m in memory.delivered if m.kind == "digest"]
    clock.advance_to(local(2026, 11, 27, 7, 0))
    d.drain()
    digests = [m for m in memory.delivered if m.kind == "digest"]
    notices = [m for m in svc.outbox() if m.kind == "task_assigned"]
    assert {m.recipient for m in digests} == {m.recipient for m in notices}  # one digest per person
    assert len(digests) == len({m.recipient for m in notices})
    assert sorted(i for m in digests for i in m.ids) == sorted(m.id for m in notices)
    assert all(m.delivered_at == local(2026, 11, 27, 7, 0) for m in notices)
    one = next(m for m in digests if len(m.ids) > 1)
    assert one.recipient == someone and len(one.ids) == 2
    assert one.subject.startswith("[舆情] 静默时段通知汇总") and one.text.count("新任务") == 2
    assert svc.incident(inc.id).severity == "III"


def test_grade_ii_notices_are_urgent_at_night(engine, playbooks, roster):
    clock = VirtualClock(local(2026, 11, 26, 23, 30))
    routing = Routing(channels=("memory",), tz=SH)
    svc = CrisisService(engine, playbooks, roster, clock, routing=routing)
    svc.open_incident(title="t", category="medical_dispute", principal=by("duty_officer"), severity="II")
    assert svc.outbox() and all(m.held_until is None and m.urgent for m in svc.outbox())


def test_legacy_rows_keep_their_text_and_an_unrenderable_one_fails_alone(engine, playbooks, roster):
    clock = VirtualClock(local(2026, 11, 26, 10))
    memory = MemoryChannel("memory")
    base = {"channel": "memory", "recipient": "liaison", "incident_id": None, "payload": {}, "created_at": clock.now(),
            "next_attempt_at": clock.now(), "attempts": 0, "urgent": False}
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), [
            {**base, "dedupe_key": "old:1:memory", "kind": "", "subject": "旧消息", "body": "queued before kinds"},
            {**base, "dedupe_key": "odd:1:memory", "kind": "no_such_kind", "subject": "", "body": ""},
            {**base, "dedupe_key": "new:1:memory", "kind": "test", "subject": "", "body": "",
             "payload": {"channel": "memory"}}])
    stats = Dispatcher(engine, {"memory": memory}, Renderer(roster, SH), clock,
                       routing=Routing(channels=("memory",), tz=SH)).drain()
    assert {m.dedupe_key: m.subject for m in memory.delivered} == {"old:1:memory": "旧消息",
                                                                   "new:1:memory": "[舆情系统] 测试消息"}
    assert stats.retrying == 1


def test_file_batches_one_fsync_each_a_failed_write_retries_the_batch_and_a_bad_message_fails_alone(
        engine, playbooks, roster, tmp_path, monkeypatch):
    """A local channel gets its messages as batches: one fsync per batch; a write that fails leaves the whole
    batch to retry (lines that reached the file before the failure are not written twice); one message that
    cannot be rendered fails alone while the rest of its batch goes out."""
    clock = VirtualClock(local(2026, 11, 26, 10))
    path = tmp_path / "n.jsonl"
    base = {"channel": "file", "recipient": "liaison", "incident_id": None, "created_at": clock.now(),
            "next_attempt_at": clock.now(), "attempts": 0, "urgent": False, "subject": "", "body": ""}
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), [
            {**base, "dedupe_key": f"m{i}:file", "kind": "no_such_kind" if i == 7 else "test",
             "payload": {"channel": "file"}} for i in range(300)])
    syncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        syncs.append(fd)
        if len(syncs) == 1:  # the first batch's lines are written, then the disk says no
            raise OSError(errno.EIO, "I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    d = Dispatcher(engine, {"file": FileChannel(path)}, Renderer(roster, SH), clock,
                   routing=Routing(channels=("file",), tz=SH), policy=Policy(batch=200, backoff=60))
    first = d.drain()
    assert first.delivered == 100 and first.retrying == 200 and len(syncs) == 2  # 200 failed together, 100 went
    clock.advance(timedelta(minutes=2))
    second = d.drain()
    assert second.delivered == 199 and second.retrying == 1  # m7 alone fails (it cannot be rendered)
    assert {said for _ch, ok, said in second.receipts if ok} == {"already written"} and len(syncs) == 2  # not again
    keys = [json.loads(x)["key"] for x in path.read_text("utf-8").splitlines()]
    assert sorted(keys) == sorted(f"m{i}:file" for i in range(300) if i != 7)  # each exactly once
    assert {m.dedupe_key for m in rows_undelivered(engine)} == {"m7:file"}


def rows_undelivered(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.delivered_at == None)))  # noqa: E711


def test_urgent_messages_are_claimed_first_even_behind_older_ones(engine, roster):
    clock = VirtualClock(local(2026, 11, 26, 10))
    memory = MemoryChannel("memory")
    base = {"channel": "memory", "recipient": "liaison", "incident_id": None, "created_at": clock.now(),
            "attempts": 0, "subject": "", "body": "", "kind": "test", "payload": {"channel": "memory"}}
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), [
            {**base, "dedupe_key": f"{'urgent' if i >= 3 else 'routine'}{i}", "urgent": i >= 3,
             "next_attempt_at": clock.now() + timedelta(seconds=i)} for i in range(5)])
    clock.advance(timedelta(minutes=1))
    d = Dispatcher(engine, {"memory": memory}, Renderer(roster, SH), clock,
                   routing=Routing(channels=("memory",), tz=SH), policy=Policy(batch=2))
    d.drain()
    assert [m.dedupe_key for m in memory.delivered] == ["urgent3", "urgent4", "routine0", "routine1", "routine2"]


def test_a_plain_channel_gets_no_markdown_rendered(engine, roster):
    """The file and the log never show Markdown: it is not rendered for them (escaping every fact of every
    message for the record channels was most of delivery's cost); chat robots get it."""
    clock = VirtualClock(local(2026, 11, 26, 10))
    chans = {name: MemoryChannel(name) for name in ("file", "chat")}
    chans["file"].plain = True  # type: ignore[attr-defined]
    routing = Routing(channels=("file", "chat"), tz=SH)
    queue(engine, roster, routing, clock.now(), recipient="liaison", key="esc:1:1")
    Dispatcher(engine, chans, Renderer(roster, SH), clock, routing=routing).drain()
    (file,), (chat,) = (chans[n].delivered for n in ("file", "chat"))
    assert file.subject == chat.subject and "核实" in file.subject  # the liaison reads Chinese
    assert file.text == chat.text and "核实" in file.text
    assert file.markdown == "" and chat.markdown.startswith("**")
    assert rows_undelivered(engine) == []


class _Refusing(MemoryChannel):
    """A local channel whose far end refuses one person."""

    def deliver(self, message):
        if message.recipient == "legal":
            raise DeliveryError("mailbox full")
        return super().deliver(message)


def test_inline_drain_delivers_and_marks_exactly_what_drain_does(tmp_path, migrated_db, roster):
    """A drill drains in its own thread (`drain_inline`): rounds larger than a batch, quiet-hour digests,
    a refused recipient retried then failed over to a page: the same messages in the same
    order, and the same outbox rows, as the threaded `drain`."""
    outcomes = []
    for name in ("drain", "drain_inline"):
        shutil.copyfile(migrated_db, tmp_path / f"{name}.db")
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        clock = VirtualClock(local(2026, 11, 26, 22, 30))
        routing = Routing(channels=("memory",), tz=SH)
        for i, who in enumerate(["liaison", "commentator", "info_staff"] * 3 + ["legal"]):
            queue(engine, roster, routing, clock.now(), recipient=who, key=f"esc:{i}")
            queue(engine, roster, routing, clock.now(), recipient=who, key=f"task:{i}", kind="task_assigned",
                  severity="IV")  # held for the morning: one digest per person
        channel = _Refusing("memory")
        d = Dispatcher(engine, {"memory": channel}, Renderer(roster, SH), clock, routing=routing,
                       policy=Policy(batch=4, max_attempts=2, backoff=60), on_call=lambda _now: "oncall_admin")
        stats = []
        for at in (clock.now(), clock.now() + timedelta(minutes=1), local(2026, 11, 27, 7)):
            clock.advance_to(at)
            s = getattr(d, name)()
            stats.append((s.delivered, s.retrying, s.failed))
        with engine.connect() as conn:
            table = [tuple(r) for r in conn.execute(select(OutboxMessage.__table__).order_by(OutboxMessage.id))]
        outcomes.append((channel.delivered, stats, table))
        engine.dispose()
    (delivered, stats, table), inline = outcomes
    assert stats == [(9, 1, 0), (1, 0, 1), (9, 1, 0)]  # legal is refused, retried, then paged about
    assert [m.kind for m in delivered].count("delivery_failed") == 1
    assert [m.ids for m in delivered if m.kind == "digest"] == [(2, 8, 14), (4, 10, 16), (6, 12, 18)]
    assert inline == outcomes[0]
