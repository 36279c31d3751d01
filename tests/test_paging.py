"""`list` and `escalations` page by default: newest (or most overdue) first, a total, and the CLI's footer."""

from __future__ import annotations

from datetime import timedelta

from helpers import drive_to, open_incident
from test_cli import crisis  # noqa: F401  (the CLI fixture)


def test_incident_pages_newest_first_with_total(svc, clock):
    ids = []
    for _ in range(5):
        ids.append(open_incident(svc))
        clock.advance(timedelta(minutes=1))
    drive_to(svc, ids[1], "dismissed")
    from crisis.views import incident_list

    first = incident_list(svc, limit=2)
    assert [r.incident.id for r in first.items] == [ids[4], ids[3]] and first.total == 4 and first.next_offset == 2
    last = incident_list(svc, limit=2, offset=2)
    assert [r.incident.id for r in last.items] == [ids[2], ids[0]] and last.next_offset is None  # dismissed: left out
    everything = incident_list(svc, final=None, limit=None)
    assert [r.incident.id for r in everything.items] == ids[::-1] and everything.total == 5
    assert everything.next_offset is None
    assert set(svc.next_deadlines([ids[4]])) == {ids[4]}  # only the page's incidents are aggregated


def test_pending_escalations_most_overdue_first(svc, clock):
    early = open_incident(svc, severity="II")
    clock.advance(timedelta(minutes=10))
    late = open_incident(svc, severity="II")
    clock.advance(timedelta(hours=2))
    svc.tick()
    pending = svc.escalation_page(pending=True, limit=3)
    assert pending.total == len(svc.escalations(pending=True)) > 3
    first = pending.items[0]
    assert first.incident_id == early  # its deadline passed first
    assert [e.level for e in pending.items if e.task_id == first.task_id] == sorted(
        (e.level for e in pending.items if e.task_id == first.task_id), reverse=True)  # its latest level on top
    newest = svc.escalation_page(limit=1).items[0]
    assert newest.fired_at == max(e.fired_at for e in svc.escalations()) and newest.id == max(
        e.id for e in svc.escalations() if e.fired_at == newest.fired_at)
    assert {e.incident_id for e in svc.escalation_page(late, limit=None).items} == {late}


def test_cli_list_pages_and_says_so(crisis):  # noqa: F811
    for n in range(3):
        crisis("open", "--title", f"t{n}", "--category", "medical_dispute")
    listed = crisis.json("list", "--limit", "2")
    assert [i["title"] for i in listed] == ["t2", "t1"]
    assert [i["title"] for i in crisis.json("list", "--limit", "2", "--page", "2")] == ["t0"]
    assert len(crisis.json("list", "--limit", "0")) == 3
    shown = crisis("list", "--limit", "2").stdout
    assert "1–2 of 3, newest first; --page 2 for more; --limit 0 for all" in shown
    assert "of 3" not in crisis("list").stdout  # everything fits: no footer
