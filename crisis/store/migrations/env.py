"""Alembic environment: run migrations on the connection `crisis.store.migrate` hands over.

Migrations are only run through `crisis.store.migrate` (`crisis db init|upgrade`, command start-up,
the drill, tests), which passes its open connection in `config.attributes["connection"]`; the
`alembic` command line works too (`alembic -x url=sqlite:///store/crisis.db upgrade head` with
`-c crisis/store/migrations/alembic.ini`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from sqlmodel.sql.sqltypes import AutoString

from crisis.store import auth_models as _auth_models  # noqa: F401  (the whole schema: accounts' tables too)
from crisis.store import models
from crisis.store.types import UTCDateTime

config = context.config
target_metadata = models.SQLModel.metadata


def _render_item(type_: str, obj: object, _ctx: object) -> str | bool:
    """Autogenerate writes the plain SQL types our column types store into, so migration files never
    import application code (UTC times are naive DATETIME / TIMESTAMP; text is VARCHAR)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    return False


def _configure(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table instead
        compare_type=True,
        render_item=_render_item,
        include_object=lambda obj, name, type_, reflected, compare_to: name != "apscheduler_jobs",
    )


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _configure(conn)
        context.run_migrations()


run()
