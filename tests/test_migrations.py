"""Alembic migrations: the schema they build is the models' schema (SQLite and PostgreSQL), databases are
upgraded on start, and only `crisis db init` (or the drill) creates one — a wrong URL is an error."""

from __future__ import annotations

import json
from pathlib import Path

import pgserver
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers import crisis_env
from pgserver import pg_cluster, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import inspect, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from crisis import cli
from crisis.cli import common
from crisis.errors import Conflict, DatabaseMissing
from crisis.store import auth_models as _auth_models  # noqa: F401  (the whole schema on SQLModel.metadata)
from crisis.store import migrate
from crisis.store import models as _models  # noqa: F401
from crisis.store.db import make_engine

PG = pytest.mark.skipif(pgserver.unavailable() is not None, reason=f"no PostgreSQL here: {pgserver.unavailable()}")


def _diffs(engine) -> list:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata)
    return [d for d in diffs if not (isinstance(d, tuple) and "apscheduler" in str(d))]


def _at(engine, rev: str) -> None:
    """A database at an older revision, as an earlier release left it."""
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), rev)


def test_revisions_read_without_alembic_agree_with_alembic():
    script = ScriptDirectory.from_config(migrate._config())
    assert migrate.head() == script.get_current_head()
    assert migrate.revisions() == {s.revision: s.down_revision for s in script.walk_revisions()}


def test_migrations_build_the_models_schema_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    assert migrate.create_db(engine) == ["0001", *migrate._path("0001")]
    assert _diffs(engine) == []
    assert migrate.create_db(engine) == []  # a second init changes nothing
    with engine.connect() as conn:
        triggers = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
    assert {"event_no_update", "event_no_delete"} <= triggers


@PG
def test_migrations_build_the_models_schema_on_postgresql(pg_url):  # noqa: F811
    engine = make_engine(pg_url)
    try:
        with pytest.raises(DatabaseMissing, match="no crisis tables"):
            migrate.upgrade_db(engine)  # an empty database is refused, not filled
        _at(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO incident (title, category, signals, stage, severity, cycle, opened_by, "
                              "opened_at, stage_entered_at, playbook_version, version) VALUES ('t', 'c', '{}', "
                              "'monitoring', 'II', 1, 'p', now(), now(), '', 0)"))
        migrate.open_db(pg_url).dispose()  # upgraded on start
        assert _diffs(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM incident")).scalar() == 1
            names = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'event'::regclass"))
                        .scalars())
        assert {"event_append_only", "event_no_truncate"} <= names
    finally:
        engine.dispose()


def test_an_older_database_is_upgraded_on_start_keeping_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(url)
    _at(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO event (at, actor, kind, data) VALUES ('2026-03-14 13:00:00', 'p', 'k', '{}')"))
    migrate.open_db(url).dispose()
    with engine.connect() as conn:
        assert migrate.revision(conn) == migrate.head()
        assert conn.execute(text("SELECT actor, auth FROM event")).all() == [("p", None)]
        with pytest.raises(Exception, match="append-only"):
            conn.execute(text("DELETE FROM event"))  # the triggers survived the upgrade


def _legacy(engine) -> None:
    """What the schema's create_all made before migrations: the baseline's tables, no alembic_version."""
    _at(engine, migrate.BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


def test_a_database_from_before_migrations_is_adopted(tmp_path):
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    engine = make_engine(url)
    _legacy(engine)
    migrate.open_db(url).dispose()
    with engine.connect() as conn:
        assert migrate.revision(conn) == migrate.head()

    partial = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _legacy(partial)
    with partial.begin() as conn:
        conn.execute(text("DROP TABLE account"))
    with pytest.raises(Conflict, match="predates migrations and lacks table account"):
        migrate.upgrade_db(partial)


def test_a_newer_database_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = make_engine(url)
    migrate.create_db(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(Conflict, match="newer than this crisis"):
        migrate.open_db(url)


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    for name, value in crisis_env(tmp_path, db=False).items():
        monkeypatch.setenv(name, value)
    common._state.clear()
    res = CliRunner().invoke(cli.app, list(args))
    return res.exit_code, " ".join(res.output.split())  # rich wraps long lines


def test_commands_refuse_to_create_a_database_and_say_where_they_looked(tmp_path, monkeypatch):
    for args in (["list"], ["show", "1"], ["tick"], ["db", "upgrade"], ["task", "done", "1"]):
        code, output = _cli(tmp_path, monkeypatch, *args)
        assert code == 2 and "no crisis database at" in output and "crisis db init" in output, (args, output)
        assert str(tmp_path / "crisis.db") in output.replace(" ", "")
    assert not list(tmp_path.glob("crisis.db*"))  # no database file was created (nor -wal / -shm)

    code, output = _cli(tmp_path, monkeypatch, "db", "init", "--json")
    assert code == 0 and json.loads(output)["applied"][-1] == migrate.head()
    code, output = _cli(tmp_path, monkeypatch, "db", "init")
    assert code == 0 and "already up to date" in output
    code, output = _cli(tmp_path, monkeypatch, "list", "--json")
    assert code == 0 and json.loads(output) == []
    code, output = _cli(tmp_path, monkeypatch, "db", "upgrade")
    assert code == 0 and "already up to date" in output


def test_a_database_file_without_crisis_tables_is_refused(tmp_path, monkeypatch):
    (tmp_path / "crisis.db").write_bytes(b"")  # e.g. touched by hand, or another program's empty file
    code, output = _cli(tmp_path, monkeypatch, "list")
    assert code == 2 and "has no crisis tables" in output
    engine = make_engine(f"sqlite:///{tmp_path / 'crisis.db'}")
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []


def _plan(conn, stmt) -> str:
    """SQLite's plan for a prebuilt statement (every parameter bound to 1, status to 'open')."""
    compiled = stmt.compile(dialect=conn.dialect)
    args = ["open" if compiled.binds[name].value == "open" else 1 for name in compiled.positiontup]
    return " ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, tuple(args)))


def test_0007_reads_open_tasks_off_partial_indexes_and_downgrades(tmp_path):
    from crisis.service import escalation, incidents

    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate.create_db(engine)
    dropped = {"ix_task_incident_id", "ix_escalation_task_id", "ix_event_at", "ix_outboxmessage_incident_id",
               "ix_outboxmessage_delivered_at", "ix_task_next_escalation", "ix_task_status_due"}
    with engine.connect() as conn:
        sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")).all())
        assert not dropped & set(sql)
        assert sql["ix_task_next_step"].endswith("WHERE status = 'open' AND next_escalation_at IS NOT NULL")
        assert sql["ix_task_open_due"].endswith("WHERE status = 'open'")
        # the escalation clock and the pending page walk the partial indexes; a transition reads its incident's
        # own tasks (the open-task index would walk every incident's open tasks)
        assert "ix_task_next_step" in _plan(conn, escalation._NEXT_DUE.stmt)
        assert "ix_task_next_step" in _plan(conn, escalation._DUE)
        assert "sqlite_autoindex_task_1" in _plan(conn, incidents._WITH_WORK.stmt)
        assert "sqlite_autoindex_task_1" in _plan(conn, incidents._INCIDENT_TASKS.stmt)  # so does a regrade
        pending = conn.exec_driver_sql("EXPLAIN QUERY PLAN SELECT e.id FROM escalation e JOIN task t ON t.id = "
                                       "e.task_id WHERE t.status = 'open' ORDER BY t.due_at, t.id LIMIT 50").all()
        assert "ix_task_open_due" in " ".join(r[3] for r in pending)
    with engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0006")
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
        assert dropped <= names and not {"ix_task_next_step", "ix_task_open_due"} & names
    migrate.upgrade_db(engine)
    assert _diffs(engine) == []
    engine.dispose()


@PG
def test_0007_downgrades_and_upgrades_on_postgresql(pg_url):  # noqa: F811
    engine = make_engine(pg_url)
    try:
        _at(engine, "head")
        with engine.begin() as conn:
            command.downgrade(migrate._config(conn), "0006")
        with engine.connect() as conn:
            names = set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'task'")).scalars())
        assert {"ix_task_incident_id", "ix_task_status_due"} <= names and "ix_task_open_due" not in names
        migrate.upgrade_db(engine)
        assert _diffs(engine) == []
        with engine.connect() as conn:
            where = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_task_next_step'")).scalar()
        assert "WHERE (((status)::text = 'open'::text) AND (next_escalation_at IS NOT NULL))" in where
    finally:
        engine.dispose()
