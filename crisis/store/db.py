"""Database engine set-up: SQLite (default, file under store/) or PostgreSQL by URL.

SQLite writers start with BEGIN IMMEDIATE so that the scheduler process and CLI commands
serialise cleanly instead of failing on lock upgrades; WAL lets readers run meanwhile. Readers use
plain (deferred) read transactions, read-only ones on PostgreSQL, and a command on a database whose
schema is already current never takes the write lock, so a long write never stalls `list` or `show`.

Driver errors that mean "this database cannot be used" (busy, not a database, cannot open, read-only,
disk full, unreachable server) become typed errors (`Busy`, `Unavailable`) with one clear line, in one
place: the engine's `handle_error` hook.

On PostgreSQL writers run concurrently: the service takes row locks (the incident's, a statement's,
a task's for escalation) before it decides on what it read. The schema is made and upgraded by
Alembic migrations (`crisis.store.migrate`), never by `create_all`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext, make_url

from crisis.errors import Busy, InputError, Unavailable
from crisis.store.lite import BUSY_TIMEOUT, sqlite_error, sqlite_path

if TYPE_CHECKING:  # sqlmodel (and the ORM) load where a session is made: the Core hot paths use none
    from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[2]
URL_HELP = "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DBNAME"


def default_url() -> str:
    """CRISIS_DB_URL, else store/crisis.db (crisis.settings reads the environment)."""
    from crisis.settings import load_settings

    return load_settings().db_url


def parse_url(url: str) -> URL:
    """The URL, or an InputError saying what is wrong with it (only SQLite and PostgreSQL are supported)."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise InputError(f"cannot parse database URL {url!r} ({URL_HELP})", field="database URL") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InputError(f"unsupported database {parsed.get_backend_name()!r} in "
                         f"{parsed.render_as_string(hide_password=True)} ({URL_HELP})", field="database URL")
    return parsed


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    url = url or default_url()
    parsed = parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            path = sqlite_path(url)
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise Unavailable(f"cannot use database {path}: cannot make its folder {path.parent} "
                                      f"({e.strerror or e})") from None
            engine = create_engine(url, echo=echo,
                                   connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT})
            _sqlite_setup(engine)
        else:
            engine = create_engine(url, echo=echo, pool_pre_ping=True)
    except (exc.ArgumentError, ImportError) as e:  # a bad option, or a driver that is not installed
        raise InputError(f"cannot use database URL {shown}: {e} ({URL_HELP})", field="database URL") from None
    event.listen(engine, "handle_error", _translate_errors(shown))
    return engine


_PG_BUSY = {"55P03", "55006"}  # lock_not_available, object_in_use


def _translate_errors(shown: str) -> Any:
    """A `handle_error` hook: driver errors that mean the database cannot be used become one-line typed errors."""

    def translate(ctx: ExceptionContext) -> None:
        if ctx.is_pre_ping:
            return  # the pool reconnects on its own
        orig = ctx.original_exception
        if isinstance(orig, sqlite3.Error | OverflowError):
            typed = sqlite_error(orig, shown)  # type: ignore[arg-type]
            if typed is not None:
                raise typed
            return
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate in _PG_BUSY:
            raise Busy("database busy, try again in a moment")
        if isinstance(ctx.sqlalchemy_exception, exc.OperationalError) and (ctx.connection is None
                                                                            or ctx.is_disconnect):
            first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
            raise Unavailable(f"cannot reach database {shown}: {first}")

    return translate


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        from crisis.store.prepared import driver_sql  # (one driver call: exec_driver_sql's path costs more)

        driver_sql(conn, "BEGIN" if conn.get_execution_options().get("crisis_read") else "BEGIN IMMEDIATE")


def has_schema(engine: Engine) -> bool:
    """Whether the database still has a crisis schema (an Alembic revision), read in a read transaction."""
    try:
        with read_connection(engine) as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() is not None
    except (exc.OperationalError, exc.ProgrammingError):  # no such table
        return False


class DatabaseChanged(Unavailable):
    """The database a long-running process started on was removed, replaced, or lost its schema."""


def database_identity(engine: Engine) -> tuple[Any, ...]:
    """What makes this database *this* one: the SQLite file's device and inode (of its real path), or the
    PostgreSQL cluster's system identifier and the database's oid. A file deleted and recreated, or a
    restored copy moved over it, has another identity even at the same path or URL."""
    path = sqlite_path(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if engine.dialect.name == "sqlite":
        if path is None:
            return ("memory", id(engine))
        real = Path(os.path.realpath(path))
        try:
            st = real.stat()
        except FileNotFoundError:
            raise DatabaseChanged(f"database file {real} no longer exists") from None
        return ("sqlite", st.st_dev, st.st_ino)
    with read_connection(engine) as conn:
        oid = conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar()
    try:
        with read_connection(engine) as conn:
            system = conn.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar()
    except exc.DBAPIError:  # not granted to this role: the oid alone still tells a recreated database apart
        system = None
    return ("postgresql", system, oid)


def check_same_database(engine: Engine, identity: tuple[Any, ...]) -> None:
    """Raise DatabaseChanged unless the database is still the one with `identity` and has its schema.

    Checked before anything else touches the database: SQLite would otherwise quietly create an empty file
    at the path, and pooled connections would keep working on the deleted one."""
    now = database_identity(engine)
    where = engine.url.render_as_string(hide_password=True)
    if now != identity:
        raise DatabaseChanged(f"database {where} was replaced by another one since this process started")
    if not has_schema(engine):
        raise DatabaseChanged(f"database {where} has lost its schema (tables dropped, or a wrong file)")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One write transaction: commit on success, roll back everything on any error."""
    from sqlmodel import Session

    with Session(engine, expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


def _reader(engine: Engine) -> Engine:
    """The engine with read transactions: plain BEGIN on SQLite (no write lock), READ ONLY on PostgreSQL."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(crisis_read=True, postgresql_readonly=True)
    return engine.execution_options(crisis_read=True)


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a read transaction (begun on first use), rolled back when the block ends."""
    with _reader(engine).connect() as conn:
        yield conn


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read transaction: it never waits for writers (PostgreSQL also refuses a write inside it)."""
    from sqlmodel import Session

    with Session(_reader(engine), expire_on_commit=False) as s:
        yield s
