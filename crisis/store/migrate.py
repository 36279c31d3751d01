"""Schema migrations with Alembic: create a database, bring one up to date, refuse to invent one.

Three doors, one rule — only an explicit creation makes a database:
- `create_db(engine)`: `crisis db init`, the drill (its own throwaway database) and tests.
- `open_db(url)`: every other command. A missing SQLite file, or a database without crisis tables, is
  `DatabaseMissing` naming where it looked (nothing is created); one that is behind is upgraded.
- `upgrade_db(engine)`: `crisis db upgrade`, and what `open_db` runs when the revision is behind.

Migrations live in `crisis/store/migrations/versions/` (inside the package, so a wheel carries them).
On PostgreSQL the upgrade holds an advisory lock for its transaction, so processes starting together
take turns; on SQLite the writer's BEGIN IMMEDIATE does the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from crisis.errors import Conflict, DatabaseMissing
from crisis.store.db import make_engine, read_connection, sqlite_path
from crisis.store.lite import head, revisions

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
BASELINE = "0001"
PG_MIGRATE_LOCK = 0x63726973697377  # "crisisw" (the scheduler's leader lock is "crisis")
# Tables every crisis database has had since before migrations: their presence marks a database made by
# `init_db`'s create_all, which is stamped at the baseline instead of being created again.
LEGACY_TABLES = ("incident", "task", "escalation", "event", "statement", "outboxmessage")


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # Alembic loads only when something is to be migrated: start-up stays fast

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def revision(conn: Connection) -> str | None:
    """The database's revision (None: no alembic_version table, or an empty one)."""
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def where(engine: Engine) -> str:
    """The database's location for messages (the password hidden)."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    return str(path) if path is not None else engine.url.render_as_string(hide_password=True)


def is_current(engine: Engine) -> bool:
    """Whether the database is at this code's revision, read without taking SQLite's write lock."""
    with read_connection(engine) as conn:
        return revision(conn) == head()


def upgrade_db(engine: Engine, *, create: bool = False) -> list[str]:
    """Apply the migrations the database lacks, in one transaction; returns the revisions applied.
    Without `create`, a database with no crisis tables is refused rather than filled."""
    if is_current(engine):
        return []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATE_LOCK})
        current = revision(conn)
        if current == head():
            return []
        if current is not None and current not in revisions():
            raise Conflict(f"the database at {where(engine)} is at revision {current}, newer than this crisis "
                           f"({head()}): upgrade crisis")
        tables = set(inspect(conn).get_table_names())
        if current is None and set(LEGACY_TABLES) <= tables:
            _adopt(conn, engine)
            current = BASELINE
        elif current is None and not create:
            raise DatabaseMissing(f"the database at {where(engine)} has no crisis tables; "
                                  "create them with `crisis db init`")
        pending = _path(current)
        from alembic import command

        command.upgrade(_config(conn), "head")
    return pending


def _path(current: str | None) -> list[str]:
    """Revisions after `current` up to the head, oldest first."""
    out: list[str] = []
    rev: str | None = head()
    while rev is not None and rev != current:
        out.append(rev)
        rev = revisions()[rev]
    return list(reversed(out))


def _shape(conn: Connection) -> dict[str, set[str]]:
    insp = inspect(conn)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names() if t != "alembic_version"}


def _adopt(conn: Connection, engine: Engine) -> None:
    """A database made by `create_all` before migrations existed: stamp it at the baseline, provided it has
    every table and column the baseline makes (checked against the baseline built in memory)."""
    from alembic import command

    scratch = make_engine("sqlite://")
    with scratch.begin() as mem:
        command.upgrade(_config(mem), BASELINE)
        want = _shape(mem)
    scratch.dispose()
    have = _shape(conn)
    missing = [f"table {t}" if t not in have else f"column {t}.{c}"
               for t, cols in sorted(want.items()) for c in sorted(cols) if c not in have.get(t, {c})]
    missing += [f"table {t}" for t in sorted(want) if t not in have]
    if missing:
        raise Conflict(f"the database at {where(engine)} predates migrations and lacks {', '.join(missing)}: "
                       "create a new one with `crisis db init`")
    command.stamp(_config(conn), BASELINE)


def create_db(engine: Engine) -> list[str]:
    """Create the schema (or bring an existing one up to date): the one door that makes a database."""
    path = sqlite_path(str(engine.url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return upgrade_db(engine, create=True)


def require_exists(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist before anything connects (connecting creates it)."""
    path = sqlite_path(url)
    if url.startswith("sqlite") and (path is None or not path.exists()):
        where_ = "an in-memory database" if path is None else str(path)
        raise DatabaseMissing(f"no crisis database at {where_}: create it with `crisis db init` "
                              "(or point --db / CRISIS_DB_URL at an existing one)")


def open_db(url: str) -> Engine:
    """An engine on an existing crisis database, upgraded to this code's revision if it is behind."""
    require_exists(url)
    engine = make_engine(url)
    upgrade_db(engine)
    return engine
