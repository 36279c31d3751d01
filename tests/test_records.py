"""Read records (crisis.store.records) stand for the models' rows: the same fields in the same order, the same
values (times aware UTC, JSON parsed, booleans), and the same JSON — whether read through bare sqlite3 (the CLI's
light reads) or through the SQLAlchemy engine (API, web)."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

import pytest
from helpers import by, drive_to, open_incident
from sqlmodel import Session, select

from crisis import jsonout
from crisis.store import models, records
from crisis.store.lite import SQLiteFile, open_current, snapshot
from crisis.store.records import TABLES, build, columns

PAIRS = [(records.Incident, models.Incident), (records.Task, models.Task), (records.Escalation, models.Escalation),
         (records.Event, models.Event), (records.Statement, models.Statement)]


@pytest.mark.parametrize(("rec", "model"), PAIRS)
def test_records_have_the_models_columns_in_order(rec, model):
    table = model.__table__
    assert TABLES[rec] == table.name
    assert [f.name for f in fields(rec)] == [c.name for c in table.columns]


@pytest.fixture()
def busy(svc, clock):
    """An incident with done and overdue tasks, an escalation, a statement and a timeline."""
    iid = open_incident(svc)
    drive_to(svc, iid, "responding")
    svc.draft_statement(iid, title="说明", body="正文 body", major=True, principal=by(svc.roster.roles["duty_officer"]))
    clock.advance(timedelta(days=2))
    svc.tick()
    return iid


@pytest.mark.parametrize("through", ["sqlite3", "engine"])
def test_records_read_the_same_values_and_json_as_the_models(svc, busy, through):
    source = open_current(str(svc.engine.url)) if through == "sqlite3" else svc.engine
    assert source is not None and isinstance(source, SQLiteFile) == (through == "sqlite3")
    for rec, model in PAIRS:
        with Session(svc.engine) as s:
            want = list(s.exec(select(model).order_by(model.id)).all())
        with snapshot(source) as snap:
            got = [build(rec, r) for r in snap.rows(f"SELECT {columns(rec)} FROM {TABLES[rec]} ORDER BY id")]
        assert want, model.__name__
        assert [records.as_dict(g) for g in got] == [w.model_dump() for w in want]
        assert jsonout.encode(got) == jsonout.encode(want)


def views_agree_with_the_models(svc, iid: int) -> None:
    """Every read model over `svc`'s store gives the rows the ORM gives (used on SQLite here and on PostgreSQL
    in test_postgres): values, order, overdue counts compared in SQL against `now`."""
    from crisis import views

    with Session(svc.engine) as s:
        tasks = list(s.exec(select(models.Task).where(models.Task.incident_id == iid).order_by(models.Task.id)))
        escs = list(s.exec(select(models.Escalation).order_by(models.Escalation.id)))
        events = list(s.exec(select(models.Event).order_by(models.Event.id)))
        inc = s.get(models.Incident, iid)
    detail = views.incident_detail(svc, iid)
    assert records.as_dict(detail.incident) == inc.model_dump()
    assert [records.as_dict(t) for t in detail.all_tasks] == [t.model_dump() for t in tasks]
    assert {e.id for e in detail.escalations} == {e.id for e in escs if e.incident_id == iid}
    now = svc.clock.now()
    row = next(r for r in views.incident_list(svc, final=None).items if r.incident.id == iid)
    open_ = [t for t in tasks if t.status == "open"]
    assert row.overdue == sum(1 for t in open_ if t.due_at and t.due_at < now) > 0
    assert row.next_deadline == min(t.due_at for t in open_ if t.due_at) and row.open_tasks == len(open_)
    pending = views.escalation_page(svc, pending=True, limit=None)
    assert pending.total == len(pending.items) > 0
    assert [records.as_dict(e) for e in views.escalation_page(svc, limit=None).items] == [
        e.model_dump() for e in sorted(escs, key=lambda e: (e.fired_at, e.id), reverse=True)]
    assert [e.id for e in views.events_since(svc, 0, limit=10_000)] == [e.id for e in events]
    who = escs[0].recipient
    work = views.my_work(svc, who)
    assert escs[0].id in {e.id for e in work.escalations} and work.titles[iid] == inc.title
    assert views.escalation_detail(svc, escs[0].id).task.id == escs[0].task_id


def test_views_agree_with_the_models_on_sqlite(svc, busy):
    views_agree_with_the_models(svc, busy)
