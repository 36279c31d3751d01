"""Read models (crisis.views): the incident list, a person's work, events since an id, the playbook outline.

Each is checked for content, paging and filters, and the list for a fixed statement count (no query per
incident), counted with a SQLAlchemy `before_cursor_execute` listener on the service's engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from helpers import by, drive_to, open_incident
from sqlalchemy import event
from test_cli import crisis  # noqa: F401  (the CLI fixture)

from crisis import views
from crisis.errors import NotFound
from crisis.severity import Severity


@contextmanager
def statements(engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` inside the block."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_a) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_list_filters_and_pages_newest_first(svc, clock):
    ids = []
    for cat in ("medical_dispute", "service_quality", "medical_dispute", "medical_dispute"):
        ids.append(open_incident(svc, category=cat))
        clock.advance(timedelta(minutes=1))
    drive_to(svc, ids[0], "dismissed")
    drive_to(svc, ids[3], "reported")
    assert [r.incident.id for r in views.incident_list(svc).items] == [ids[3], ids[2], ids[1]]
    assert [r.incident.id for r in views.incident_list(svc, final=True).items] == [ids[0]]
    assert [r.incident.id for r in views.incident_list(svc, final=None).items] == ids[::-1]
    assert [r.incident.id for r in views.incident_list(svc, stage="reported").items] == [ids[3]]
    assert [r.incident.id for r in views.incident_list(svc, category="medical_dispute").items] == [ids[3], ids[2]]
    both = views.incident_list(svc, category="medical_dispute", stage="monitoring")
    assert [r.incident.id for r in both.items] == [ids[2]] and both.total == 1
    first = views.incident_list(svc, final=None, limit=3)
    assert first.total == 4 and first.next_offset == 3 and len(first.items) == 3
    rest = views.incident_list(svc, final=None, limit=3, offset=3)
    assert [r.incident.id for r in rest.items] == [ids[0]] and rest.next_offset is None
    assert views.incident_list(svc, stage="closed").items == []


def test_list_can_leave_the_watch_list_out(svc, clock):
    watched, live = open_incident(svc), open_incident(svc)
    drive_to(svc, watched, "watch")
    assert {r.incident.id for r in views.incident_list(svc).items} == {watched, live}
    assert [r.incident.id for r in views.incident_list(svc, watch=False).items] == [live]
    assert views.incident_list(svc, watch=False).total == 1


def test_list_counts_overdue_and_unacked_per_incident(svc, clock, roster):
    calm = open_incident(svc)
    clock.advance(timedelta(minutes=1))
    late = open_incident(svc)
    rows = {r.incident.id: r for r in views.incident_list(svc).items}
    assert rows[late].overdue == rows[calm].overdue == 0 and rows[late].unacked == 0
    assert rows[late].open_tasks == len([t for t in svc.tasks(late) if t.status == "open"]) > 0
    open_tasks = [t for t in svc.tasks(late) if t.due_at is not None]
    assert rows[late].next_deadline == min(t.due_at for t in open_tasks)
    clock.advance(timedelta(hours=3))
    for t in svc.tasks(calm):  # the calm one does its required work before the tick
        if t.required and t.status == "open":
            svc.complete_task(t.id, principal=by(t.assignee or roster.roles["duty_officer"]))
    svc.tick()
    rows = {r.incident.id: r for r in views.incident_list(svc).items}
    still_late = [t for t in svc.tasks(late) if t.status == "open" and t.due_at and t.due_at < clock.now()]
    assert rows[late].overdue == len(still_late) > 0
    pending = svc.escalations(late, pending=True)
    assert rows[late].unacked == len([e for e in pending if e.acked_at is None]) > 0
    esc = pending[0]
    svc.acknowledge(principal=by(esc.recipient), escalation_id=esc.id)
    again = {r.incident.id: r for r in views.incident_list(svc).items}
    covered = [e for e in pending if e.task_id == esc.task_id and e.acked_at is None]  # the whole chain so far
    assert again[late].unacked == rows[late].unacked - len(covered) and len(covered) > 1
    calm_open = [t for t in svc.tasks(calm) if t.status == "open" and t.due_at and t.due_at < clock.now()]
    assert rows[calm].overdue == len(calm_open)


def test_list_statement_count_does_not_grow_with_the_page(svc, clock):
    for _ in range(3):
        open_incident(svc)
    svc.tick()
    with statements(svc.engine) as few:
        assert len(views.incident_list(svc).items) == 3
    for _ in range(12):
        open_incident(svc)
        clock.advance(timedelta(minutes=1))
    svc.tick()
    with statements(svc.engine) as many:
        assert len(views.incident_list(svc).items) == 15
    selects = [s for s in many if s.lstrip().upper().startswith("SELECT")]
    assert len(many) == len(few) and len(selects) <= 4  # count, page, deadlines, escalations


def test_my_work_is_open_tasks_and_pending_escalations_newest_first(svc, clock):
    first = open_incident(svc)
    clock.advance(timedelta(minutes=1))
    second = open_incident(svc)
    who = next(t.assignee for t in svc.tasks(second) if t.assignee)
    work = views.my_work(svc, who)
    mine = [t for iid in (second, first) for t in sorted(svc.tasks(iid), key=lambda t: -(t.id or 0))
            if t.assignee == who and t.status == "open"]
    assert work.person == who and [t.id for t in work.tasks] == [t.id for t in mine]
    assert [t.id for t in work.tasks] == sorted((t.id for t in work.tasks), reverse=True)
    done = work.tasks[0]
    svc.complete_task(done.id, principal=by(who))
    assert done.id not in {t.id for t in views.my_work(svc, who).tasks}
    clock.advance(timedelta(days=2))
    svc.tick()
    paged = svc.escalations(pending=True)
    target = paged[0].recipient
    escs = views.my_work(svc, target).escalations
    assert escs and {e.id for e in escs} == {e.id for e in paged if e.recipient == target}
    assert [(e.fired_at, e.id) for e in escs] == sorted(((e.fired_at, e.id) for e in escs), reverse=True)
    assert views.my_work(svc, target).titles[escs[0].incident_id] == svc.incident(escs[0].incident_id).title
    assert views.my_work(svc, "nobody").tasks == [] and views.my_work(svc, "nobody").escalations == []
    assert views.my_work(svc, "nobody").titles == {}


def test_escalation_detail_has_the_task_incident_and_chain(svc, clock):
    iid = open_incident(svc)
    clock.advance(timedelta(days=2))
    svc.tick()
    last = max(svc.escalations(iid), key=lambda e: (e.level, e.id or 0))
    d = views.escalation_detail(svc, last.id)
    assert (d.escalation.id, d.task.id, d.incident.id) == (last.id, last.task_id, iid)
    chain = [e for e in svc.escalations(iid) if e.task_id == last.task_id]
    assert [e.id for e in d.chain] == [e.id for e in sorted(chain, key=lambda e: (e.level, e.fired_at, e.id))]
    with pytest.raises(NotFound):
        views.escalation_detail(svc, 10**9)


def test_events_since_pages_in_id_order(svc):
    iid = open_incident(svc)
    every = views.events_since(svc, 0, limit=1000)
    assert every and every[0].kind == "incident_opened" and every[0].incident_id == iid
    ids = [e.id for e in every]
    assert ids == sorted(ids)
    assert [e.id for e in views.events_since(svc, ids[0], limit=2)] == ids[1:3]
    assert views.events_since(svc, ids[-1]) == []


def test_playbook_outline_per_grade(playbooks):
    pb = playbooks.get("medical_dispute")
    grave, mild = views.playbook_outline(pb, Severity.I), views.playbook_outline(pb, Severity.IV)
    assert grave.category == "medical_dispute" and grave.severity == "I" and mild.severity == "IV"
    assert [st.stage for st in grave.stages] == list(pb.stages)
    assert [t.key for t in grave.tasks] == [t.key for spec in pb.stages.values() for t in spec.tasks]
    due = {(t.stage, t.key): t.due for t in grave.tasks}
    stage_of, spec = next((st, t) for st, s in pb.stages.items() for t in s.tasks if t.due)
    assert due[(stage_of, spec.key)] == spec.due[Severity.I]
    pairs = zip(grave.tasks, mild.tasks, strict=True)
    assert any(g.due is not None and m.due is not None and g.due < m.due for g, m in pairs)
    for st in grave.stages:
        chain = pb.escalation_for(st.stage)
        assert st.chain == chain.chain and st.wait == chain.wait[Severity.I] and st.repeat == chain.repeat
        assert st.names[0] and st.names[1]
    doc = views.outline_json(grave)
    assert doc["severity"] == "I" and len(doc["tasks"]) == len(grave.tasks) and doc["stages"][0]["chain"]


def test_cli_list_filters_and_playbook_show_read_the_views(crisis):  # noqa: F811
    for n in range(2):  # the CLI fixture has one playbook
        crisis("open", "--title", f"t{n}", "--category", "medical_dispute")
    assert len(crisis.json("list", "--category", "medical_dispute")) == 2
    assert crisis.json("list", "--category", "service_quality") == []
    assert [i["title"] for i in crisis.json("list", "--stage", "monitoring")] == ["t1", "t0"]
    assert crisis.json("list", "--final") == [] and crisis.json("list", "--stage", "closed") == []
    row = crisis.json("list")[0]
    assert row["overdue"] == 0 and row["unacked"] == 0 and row["next_deadline"].endswith("Z")
    outline = crisis.json("playbook", "show", "medical_dispute", "--severity", "I")
    assert outline["severity"] == "I" and outline["tasks"] and outline["stages"][0]["chain"]
    assert "monitoring:" in crisis("playbook", "show", "medical_dispute").stdout  # the chain per stage


def test_the_package_serves_every_view_from_the_module_that_holds_it():
    """crisis.views names each view once (with its module) and loads that module on first use: `crisis.views.X`
    is the module's own object, and nothing else is reachable through the package."""
    import importlib
    import subprocess
    import sys

    assert sorted(views.__all__) == sorted(views._MODULE)
    for name, module in views._MODULE.items():
        assert getattr(views, name) is getattr(importlib.import_module(f"crisis.views.{module}"), name)
    with pytest.raises(AttributeError):
        views.select_records  # noqa: B018  (a helper of the views, not a view)
    probe = ("import sys; from crisis import views; views.incident_tasks; "
             "print(sorted(m for m in sys.modules if m.startswith('crisis.views.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['crisis.views.detail', 'crisis.views.paging']"
