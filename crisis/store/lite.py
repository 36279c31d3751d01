"""Read snapshots without the ORM: the one query layer under crisis.views, on SQLAlchemy or on bare sqlite3.

Why: a read command (`crisis show`, `list`, `escalations`) on a SQLite store spends most of its life importing
SQLAlchemy and the models (≈ 0.6 s here) to run three or four SELECTs that take milliseconds. The read models
are written once as SQL text with `:name` parameters, which both drivers understand:

- `SQLiteFile` (the CLI on the default store): the standard library's sqlite3, nothing else imported;
- a SQLAlchemy `Engine` (the API, the web, PostgreSQL, tests): the same text through `read_connection`.

Either way one snapshot is one read transaction (plain BEGIN on SQLite: no write lock; READ ONLY on PostgreSQL),
and values come back raw for crisis.store.records to convert. `open_current` says whether a URL can be read this
way: an existing SQLite file already at this code's schema revision; anything else (missing, behind, PostgreSQL)
goes through crisis.store.migrate.open_db as before, so errors and upgrades stay in one place.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from crisis.errors import Busy, Conflict, InputError, Unavailable

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
BUSY_TIMEOUT = 30.0  # seconds a SQLite connection waits for another one before "database busy"
ALL_ROWS = 2**62  # LIMIT for "no limit" (SQLite has no LIMIT ALL, PostgreSQL no LIMIT -1)

# SQLite primary result codes that mean the database file itself is unusable (https://sqlite.org/rescode.html)
SQLITE_UNUSABLE = {3: "permission denied", 8: "the database is read-only", 10: "disk I/O error",
                   11: "the database file is corrupt", 13: "the disk is full", 14: "cannot open the file",
                   23: "not authorised", 26: "the file is not a database"}
SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url[len("sqlite:///"):])


def sqlite_error(orig: sqlite3.Error, shown: str) -> Exception | None:
    """The typed error a sqlite3 error stands for (busy, unusable file, a number too large), else None."""
    if isinstance(orig, OverflowError):  # SQLite binds integers as 64-bit
        return InputError("number too large (the database holds whole numbers up to 9223372036854775807)")
    code = (getattr(orig, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in SQLITE_BUSY:
        return Busy("database busy, try again in a moment")
    if code in SQLITE_UNUSABLE:
        return Unavailable(f"cannot use database {shown}: {SQLITE_UNUSABLE[code]}")
    return None


# ---------------------------------------------------------------------------- schema revision, without Alembic
_REV = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?(\w+)?['\"]?", re.M)


@cache
def revisions() -> dict[str, str | None]:
    """Each migration's revision and its parent, read from the files' `revision = "..."` lines without
    importing Alembic (a test checks this agrees with Alembic's own reading)."""
    out: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("[!_]*.py")):
        found = dict(m.groups() for m in _REV.finditer(path.read_text("utf-8")))
        parent = found.get("down_revision")
        out[str(found["revision"])] = None if parent in (None, "None") else parent
    return out


@cache
def head() -> str:
    """The newest revision this code knows (one head: migrations form a line)."""
    revs = revisions()
    heads = set(revs) - {parent for parent in revs.values() if parent}
    if len(heads) != 1:
        raise Conflict(f"migrations must form one line; heads: {', '.join(sorted(heads))}")
    return heads.pop()


# ---------------------------------------------------------------------------- sources and snapshots
@dataclass(frozen=True)
class SQLiteFile:
    """An existing SQLite store read with the standard sqlite3 driver (see the module docstring)."""

    path: Path

    @property
    def shown(self) -> str:
        return f"sqlite:///{self.path}"

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        return con


def open_current(url: str) -> SQLiteFile | None:
    """`url` as a SQLiteFile when it is an existing SQLite file at this code's revision; None otherwise (the
    caller then opens it through crisis.store.migrate, which upgrades it or says what is wrong)."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    src = SQLiteFile(path)
    try:
        with snapshot(src) as snap:
            rev = snap.rows("SELECT version_num FROM alembic_version")
    except (sqlite3.Error, Unavailable):
        return None  # no such table, not a database, …: the full path reports it properly
    return src if rev and rev[0][0] == head() else None


class Snapshot(Protocol):
    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]: ...

    def time(self, dt: datetime) -> Any:
        """An aware time as a parameter compared with stored times (naive UTC; SQLite: its stored text)."""
        ...


def _sqlite_time(dt: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (naive UTC, always six fraction digits): text compares
    in time order only in exactly that shape."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _SQLiteSnapshot:
    def __init__(self, con: sqlite3.Connection, shown: str) -> None:
        self.con, self.shown = con, shown

    def time(self, dt: datetime) -> Any:
        return _sqlite_time(dt)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        try:
            return self.con.execute(sql, params or {}).fetchall()
        except (sqlite3.Error, OverflowError) as exc:
            raise (sqlite_error(exc, self.shown) or exc) from None  # type: ignore[arg-type]


class _EngineSnapshot:
    def __init__(self, conn: Any) -> None:
        from sqlalchemy import text

        self.conn, self.text = conn, text
        self.sqlite = conn.dialect.name == "sqlite"

    def time(self, dt: datetime) -> Any:
        return _sqlite_time(dt) if self.sqlite else dt.astimezone(UTC).replace(tzinfo=None)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        return self.conn.execute(self.text(sql), params or {}).all()


@contextmanager
def snapshot(source: Any) -> Iterator[Snapshot]:
    """One read transaction on `source` (a SQLiteFile, or a SQLAlchemy Engine)."""
    if isinstance(source, SQLiteFile):
        try:
            con = source.connect()
            con.execute("BEGIN")
        except sqlite3.Error as exc:
            raise (sqlite_error(exc, source.shown) or exc) from None
        try:
            yield _SQLiteSnapshot(con, source.shown)
        finally:
            con.close()  # closing ends the read transaction
        return
    from crisis.store.db import read_connection

    with read_connection(source) as conn:
        yield _EngineSnapshot(conn)


def in_list(name: str, values: Sequence[Any], params: dict[str, Any]) -> str:
    """`(:name_0, :name_1, …)` for an IN clause, its values added to `params` (NULL for an empty list)."""
    if not values:
        return "(NULL)"
    keys = [f"{name}_{i}" for i in range(len(values))]
    params.update(zip(keys, values, strict=True))
    return "(" + ", ".join(f":{k}" for k in keys) + ")"
