"""Prepared statements (crisis.store.prepared) store and read rows exactly as SQLAlchemy's own execute does, on
SQLite and PostgreSQL; engine listeners still see them, and driver errors still arrive as SQLAlchemy's typed
errors (the escalation clock's batch isolation relies on DBAPIError)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pgserver
import pytest
from pgserver import pg_cluster, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import bindparam, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from crisis.store.db import make_engine
from crisis.store.migrate import create_db
from crisis.store.models import Task
from crisis.store.prepared import InsertMany, Prepared

PG = pytest.mark.skipif(pgserver.unavailable() is not None, reason=f"no PostgreSQL here: {pgserver.unavailable()}")
T = Task.__table__  # type: ignore[attr-defined]
AT = datetime(2026, 3, 1, 8, 30, 0, 1234, tzinfo=UTC)
COLUMNS = tuple(c.key for c in T.columns if c.key not in ("id", "incident_id"))


def _row(i: int, **over: object) -> dict[str, object]:
    row = {"cycle": 1, "stage": "monitoring", "key": f"k{i}", "group": "g", "title_zh": "核实 'x'", "title_en": "t",
           "required": i % 2 == 0, "assignee": "a", "anchor": "stage", "created_at": AT,
           "due_at": AT.astimezone(ZoneInfo("Asia/Shanghai")) + timedelta(hours=i), "status": "open", "done_at": None,
           "done_by": None, "note": "50% done", "escalation_plan": [["assignee", 0], ["group_head", 3600]],
           "escalation_level": 0, "next_escalation_at": None, "acked_at": None, "acked_by": None}
    return row | over


def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        create_db(engine)
        with engine.begin() as conn:  # the same rows through SQLAlchemy and through Prepared
            conn.exec_driver_sql("INSERT INTO incident (title, category, signals, stage, severity, cycle, opened_by, "
                                 "opened_at, stage_entered_at, playbook_version, version) VALUES ('t', 'c', '{}', "
                                 "'monitoring', 'II', 1, 'p', '2026-01-01', '2026-01-01', '', 0)")
            conn.execute(insert(T), [_row(0, incident_id=1), _row(1, incident_id=1)])
            seen: list[str] = []
            event.listen(conn, "before_cursor_execute", lambda _c, _cur, stmt, *_: seen.append(stmt.split()[0]))
            ids = dict(InsertMany(T, ("incident_id", *COLUMNS), ("key", "id")).rows(
                conn, [_row(2, incident_id=1), _row(3, incident_id=1)]))
            assert sorted(ids) == ["k2", "k3"] and seen == ["INSERT"]
            read = Prepared(select(T).where(T.c.incident_id == bindparam("b_inc"), T.c.status == "open"))
            rows = [dict(zip(read.names(conn), r, strict=True)) for r in read.rows(conn, {"b_inc": 1})]
            expected = [dict(r._mapping) for r in conn.execute(select(T).where(T.c.incident_id == 1))]
            assert sorted(rows, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
            assert {r["key"]: r["due_at"] for r in rows}["k2"] == AT + timedelta(hours=2)  # aware UTC, as stored
            assert rows[0]["escalation_plan"] == [["assignee", 0], ["group_head", 3600]]
            assert {type(r["required"]) for r in rows} == {bool}
            done = Prepared(T.update().where(T.c.id == bindparam("b_id")).values(status="done"))
            assert done.many(conn, [{"b_id": ids["k2"]}, {"b_id": ids["k3"]}, {"b_id": 999}]) == 2
            assert done.run(conn, {"b_id": 999}) == 0
        with engine.begin() as conn, pytest.raises(IntegrityError):  # uq_task_stage_key, as SQLAlchemy raises it
            InsertMany(T, ("incident_id", *COLUMNS), ("id",)).rows(conn, [_row(0, incident_id=1)])
        # a read on its own (no command): what was committed, converted as inside a transaction
        soonest = Prepared(select(func.min(T.c.due_at), func.count()).where(T.c.status == bindparam("b_status")))
        assert soonest.read(engine, {"b_status": "open"}) == [(AT, 2)]  # k2, k3 done: k0 (due at AT) and k1
        with engine.begin() as conn:
            conn.execute(T.update().where(T.c.key == "k0").values(status="done"))
        assert soonest.read(engine, {"b_status": "open"}) == [(AT + timedelta(hours=1), 1)]
        assert soonest.read(engine, {"b_status": "waived"}) == [(None, 0)]
    finally:
        engine.dispose()


def test_prepared_statements_match_sqlalchemy_on_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'p.db'}")


@PG
def test_prepared_statements_match_sqlalchemy_on_postgresql(pg_url):  # noqa: F811
    _check(pg_url)


def test_a_statement_that_needs_per_call_rendering_is_refused(engine):
    with engine.connect() as conn, pytest.raises(ValueError, match="not a plain prebuilt statement"):
        Prepared(select(T.c.id).where(T.c.key.in_(["a", "b"]))).rows(conn)


def test_a_sqlite_write_transaction_keeps_the_engines_events_errors_and_pool(tmp_path):
    """`write` on SQLite runs without SQLAlchemy's Connection, yet listeners see the same statements and commit,
    driver errors arrive typed and roll everything back, and the pooled connection always goes back."""
    import sqlite3

    from crisis.errors import Busy
    from crisis.store.prepared import write

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        create_db(engine)
        seen: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda _c, _cur, stmt, *_: seen.append(stmt.split()[0]))
        event.listen(engine, "commit", lambda _c: seen.append("commit"))
        event.listen(engine, "rollback", lambda _c: seen.append("rollback"))
        add = InsertMany(T, ("incident_id", *COLUMNS), ("id",))
        with write(engine) as conn:
            Prepared(insert(T.metadata.tables["incident"]).values(
                title="t", category="c", signals={}, stage="monitoring", severity="II", cycle=1, opened_by="p",
                opened_at=AT, stage_entered_at=AT, playbook_version="", version=0)).run(conn)
            add.rows(conn, [_row(0, incident_id=1)])
        assert seen == ["BEGIN", "INSERT", "INSERT", "commit"]  # BEGIN IMMEDIATE from the engine's begin hook
        assert engine.pool.checkedout() == 0
        seen.clear()
        with pytest.raises(IntegrityError), write(engine) as conn:  # uq_task_stage_key, as SQLAlchemy raises it
            add.rows(conn, [_row(1, incident_id=1)])
            add.rows(conn, [_row(0, incident_id=1)])
        assert "commit" not in seen and "rollback" in seen and engine.pool.checkedout() == 0
        count = Prepared(select(func.count()).select_from(T))
        assert count.read(engine) == [(1,)]  # k1 went with the failed transaction
        with pytest.raises(RuntimeError), write(engine) as conn:  # any error: nothing of it stays
            add.rows(conn, [_row(2, incident_id=1)])
            raise RuntimeError("x")
        assert count.read(engine) == [(1,)] and engine.pool.checkedout() == 0
        raw = engine.raw_connection()  # the pool's one connection: give up at once on a held lock
        raw.dbapi_connection.execute("PRAGMA busy_timeout=0")
        raw.close()
        other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(Busy), write(engine) as conn:  # the engine's handle_error hook types it
                add.rows(conn, [_row(3, incident_id=1)])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert engine.pool.checkedout() == 0
    finally:
        engine.dispose()
