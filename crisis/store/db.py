"""Database engine set-up: SQLite (default, file under store/) or PostgreSQL by URL.

SQLite writers start with BEGIN IMMEDIATE so that the scheduler process and CLI commands
serialise cleanly instead of failing on lock upgrades; WAL lets readers run meanwhile.

On PostgreSQL writers run concurrently: the service takes row locks (the incident's, a statement's,
a task's for escalation) before it decides on what it read, and `init_db` takes an advisory lock so
processes starting together on an empty database take turns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel, create_engine, select

from crisis.errors import Conflict
from crisis.store import models

SCHEMA_VERSION = 1
ROOT = Path(__file__).resolve().parents[2]
PG_INIT_LOCK = 0x63726973697377  # "crisisw": the advisory lock init_db takes (scheduler.py's leader lock: "crisis")


def default_url() -> str:
    url = os.environ.get("CRISIS_DB_URL")
    if url:
        return url
    return f"sqlite:///{ROOT / 'store' / 'crisis.db'}"


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url[len("sqlite:///"):])


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    url = url or default_url()
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_setup(engine)
    else:
        engine = create_engine(url, echo=echo, pool_pre_ping=True)
    return engine


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("crisis_read") else "BEGIN IMMEDIATE")


_APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER IF NOT EXISTS event_no_update BEFORE UPDATE ON event "
    "BEGIN SELECT RAISE(ABORT, 'the audit timeline is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS event_no_delete BEFORE DELETE ON event "
    "BEGIN SELECT RAISE(ABORT, 'the audit timeline is append-only'); END",
]
_APPEND_ONLY_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION crisis_event_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'the audit timeline is append-only'; END; $$ LANGUAGE plpgsql")
_APPEND_ONLY_PG_TRIGGERS = {  # created once: no DDL (and no exclusive lock on `event`) at every start
    "event_append_only": "CREATE TRIGGER event_append_only BEFORE UPDATE OR DELETE ON event "
                         "FOR EACH ROW EXECUTE FUNCTION crisis_event_append_only()",
    # TRUNCATE skips row triggers: without this one it would empty the timeline
    "event_no_truncate": "CREATE TRIGGER event_no_truncate BEFORE TRUNCATE ON event "
                         "FOR EACH STATEMENT EXECUTE FUNCTION crisis_event_append_only()",
}


def _pg_init_lock(conn: Connection) -> None:
    """Serialise schema set-up for the rest of this transaction (released at commit or rollback)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_INIT_LOCK})


def init_db(engine: Engine) -> None:
    """Create or upgrade the schema; refuse a database written by a newer version.

    One transaction, so processes starting together on an empty database (the scheduler and a CLI command)
    take turns: the first creates everything, the others find it made."""
    _ = models  # tables are registered on import
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            _pg_init_lock(conn)
        SQLModel.metadata.create_all(conn)
        if conn.dialect.name == "sqlite":
            for stmt in _APPEND_ONLY_SQLITE:
                conn.execute(text(stmt))
        else:
            conn.execute(text(_APPEND_ONLY_PG_FUNCTION))
            present = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'event'::regclass"))
                          .scalars())
            for name, ddl in _APPEND_ONLY_PG_TRIGGERS.items():
                if name not in present:
                    conn.execute(text(ddl))
        version = conn.execute(select(models.SchemaVersion.version)).scalars().first()
        if version is None:
            conn.execute(insert(models.SchemaVersion).values(id=1, version=SCHEMA_VERSION))
        elif version > SCHEMA_VERSION:
            raise Conflict(f"database schema v{version} is newer than this crisis (v{SCHEMA_VERSION})")
        elif version < SCHEMA_VERSION:
            _migrate(Session(bind=conn), version)


def _migrate(session: Session, from_version: int) -> None:
    """Apply numbered migrations (none yet beyond v1; see store/migrations/README.md)."""
    raise Conflict(f"no migration path from schema v{from_version} to v{SCHEMA_VERSION}")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction: commit on success, roll back everything on any error."""
    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine.execution_options(crisis_read=True), expire_on_commit=False) as s:
        yield s
