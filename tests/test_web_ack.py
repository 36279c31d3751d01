"""One-tap acknowledgement links beyond the happy path (crisis.acklink.refusal, crisis.web.ack): a link whose
escalation was superseded by later levels still acknowledges the chain while it waits, and tells the page's
reader who was paged since; once someone holds the chain an older link is refused and changes nothing; after
the hold runs out an unused link works again; a done task expires every link. Real app, virtual clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from web_support import ACK_SECRET, make_app, open_incident

from crisis import acklink, views
from crisis.principal import Principal
from crisis.store.models import Escalation


@pytest.fixture()
def client(svc):
    with TestClient(make_app(svc), raise_server_exceptions=True) as c:
        yield c


def climbed(svc, clock, iid: int) -> tuple[Escalation, Escalation]:
    """Let deadlines pass until one task has paged two different people, neither acknowledged: (older, newer)."""
    for _ in range(40):
        by_task: dict[int, list[Escalation]] = {}
        for e in svc.escalations(iid, pending=True):
            by_task.setdefault(e.task_id, []).append(e)
        for chain in by_task.values():
            people = {e.recipient for e in chain}
            if len(people) >= 2 and all(e.acked_at is None for e in chain):
                first = chain[0]
                return first, next(e for e in chain if e.recipient != first.recipient)
        clock.advance(timedelta(minutes=10))
        svc.tick()
    raise AssertionError("no chain climbed past its first person")


def link(svc, esc: Escalation) -> str:
    return acklink.sign(ACK_SECRET, esc.id, esc.recipient, svc.clock.now())


def unacked(svc, iid: int) -> int:
    return next(r.unacked for r in views.incident_list(svc).items if r.incident.id == iid)


def test_a_superseded_link_acknowledges_the_chain_and_says_who_was_paged_since(client, svc, clock):
    iid = open_incident(svc).id
    older, newer = climbed(svc, clock, iid)
    assert unacked(svc, iid) >= 2
    page = client.get(f"/ack/{link(svc, older)}")
    assert page.status_code == 200 and "此消息之后又通知了" in page.text
    assert svc.roster.name(newer.recipient) in page.text.split("此消息之后又通知了")[1]
    before = svc.tasks(iid)
    res = client.post(f"/ack/{link(svc, older)}")
    assert res.status_code == 200 and "已确认" in res.text
    task = next(t for t in svc.tasks(iid) if t.id == older.task_id)
    assert task.acked_by == older.recipient
    held_from = next(t for t in before if t.id == older.task_id).next_escalation_at
    assert task.next_escalation_at is not None and held_from is not None and task.next_escalation_at >= held_from
    told = [m for m in svc.outbox() if m.kind == "acknowledged" and m.recipient == newer.recipient]
    assert told, "the later level hears who acknowledged"
    others = [e for e in svc.escalations(iid, pending=True) if e.task_id != older.task_id and e.acked_at is None]
    assert unacked(svc, iid) == len(others)  # the whole chain of that task is answered on the board


def test_once_the_chain_is_held_an_older_link_changes_nothing(client, svc, clock):
    iid = open_incident(svc).id
    older, newer = climbed(svc, clock, iid)
    svc.acknowledge(escalation_id=newer.id, principal=Principal(person=newer.recipient, auth="session"))
    events = len(svc.timeline(iid))
    for method in (client.get, client.post):
        res = method(f"/ack/{link(svc, older)}")
        assert res.status_code == 403
        assert f"无需确认：{svc.roster.name(newer.recipient)} 已确认此任务" in res.text
        assert "未做任何更改" in res.text and "<form method=\"post\" action=\"/ack/" not in res.text
    assert next(e for e in svc.escalations(iid) if e.id == older.id).acked_at is None
    assert len(svc.timeline(iid)) == events


def test_after_the_hold_runs_out_an_unused_link_acknowledges_again(client, svc, clock):
    iid = open_incident(svc).id
    older, newer = climbed(svc, clock, iid)
    svc.acknowledge(escalation_id=newer.id, principal=Principal(person=newer.recipient, auth="session"))
    fired = len(svc.escalations(iid))
    for _ in range(40):  # the hold ends, the chain climbs again
        if [e for e in svc.escalations(iid) if e.task_id == older.task_id and e.fired_at > newer.fired_at]:
            break
        clock.advance(timedelta(minutes=10))
        svc.tick()
    assert len(svc.escalations(iid)) > fired
    assert client.post(f"/ack/{link(svc, older)}").status_code == 200
    assert next(e for e in svc.escalations(iid) if e.id == older.id).acked_by == older.recipient


def test_a_done_task_expires_its_links(client, svc, clock):
    iid = open_incident(svc).id
    older, _newer = climbed(svc, clock, iid)
    svc.complete_task(older.task_id, principal=Principal(person="duty_officer", auth="session"))
    res = client.post(f"/ack/{link(svc, older)}")
    assert res.status_code == 403 and "此链接已失效：该任务已不再待办" in res.text
    assert next(e for e in svc.escalations(iid) if e.id == older.id).acked_at is None


def test_bad_links_read_in_the_readers_language(client, svc, clock):
    res = client.get("/ack/garbage")
    assert res.status_code == 403 and "确认链接无效" in res.text
    res = client.get("/ack/garbage?lang=en")
    assert res.status_code == 403 and "invalid acknowledgement link" in res.text


def test_a_link_to_an_escalation_this_database_lacks_names_it_in_the_readers_language(client, svc):
    token = acklink.sign(ACK_SECRET, 999, "president", svc.clock.now())  # signed here, for another database's row
    for lang, words in (("zh-CN", "升级提醒 #999 不存在"), ("en", "Escalation #999 does not exist")):
        res = client.get(f"/ack/{token}?lang={lang}")
        assert res.status_code == 403 and words in res.text and "no escalation" not in res.text
