"""The shell's database behaviour on PostgreSQL: reads run READ ONLY (and leave pooled connections writable),
the scheduler recognises its database by cluster and oid, an unreachable server is one clear error."""

from __future__ import annotations

import pgserver
import pytest
from pgserver import pg_cluster, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from crisis.errors import Unavailable
from crisis.store.db import (
    DatabaseChanged,
    check_same_database,
    database_identity,
    make_engine,
    read_session,
    write_session,
)
from crisis.store.migrate import create_db

REASON = pgserver.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no PostgreSQL here: {REASON}")


@pytest.fixture()
def pg_engine(pg_url):  # noqa: F811
    engine = make_engine(pg_url)
    create_db(engine)
    yield engine
    engine.dispose()


def test_reads_are_read_only_and_leave_the_pool_writable(pg_engine):
    with read_session(pg_engine) as s:
        assert s.execute(text("SHOW transaction_read_only")).scalar() == "on"
    with pytest.raises(DBAPIError, match="read-only transaction"), read_session(pg_engine) as s:
        s.execute(text("INSERT INTO account (person_id, password_hash, created_at, updated_at) "
                       "VALUES ('x', 'h', now(), now())"))
    for _ in range(3):  # the same pooled connections, now for writes
        with write_session(pg_engine) as s:
            assert s.execute(text("SHOW transaction_read_only")).scalar() == "off"
            s.execute(text("UPDATE alembic_version SET version_num = version_num"))


def test_identity_is_the_cluster_and_the_database(pg_engine, pg_url):  # noqa: F811
    identity = database_identity(pg_engine)
    assert identity[0] == "postgresql" and identity[2] is not None
    check_same_database(pg_engine, identity)
    other = make_engine(make_url(pg_url).set(database="postgres").render_as_string(hide_password=False))
    try:
        with pytest.raises(DatabaseChanged, match="was replaced"):
            check_same_database(other, identity)  # same server, another database
    finally:
        other.dispose()


def test_lost_schema_is_noticed(pg_engine):
    identity = database_identity(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(DatabaseChanged, match="lost its schema"):
        check_same_database(pg_engine, identity)


def test_unreachable_server_is_unavailable():
    engine = make_engine("postgresql+psycopg://crisis:secret@127.0.0.1:1/crisis")
    with pytest.raises(Unavailable, match="cannot reach database") as e:
        create_db(engine)
    assert "secret" not in str(e.value) and "\n" not in str(e.value)
