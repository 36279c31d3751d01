"""`crisis db …`: create the database, bring it up to date. No other command creates one."""

from __future__ import annotations

import typer

from crisis.cli.common import JsonOpt, emit, out, run, settings

db_app = typer.Typer(no_args_is_help=True, help="The database: create it, upgrade its schema.")


@db_app.command("init")
def db_init(as_json: JsonOpt = False) -> None:
    """Create the database at --db / CRISIS_DB_URL (or bring an existing one up to date)."""
    def body() -> None:
        from crisis.store.db import make_engine
        from crisis.store.migrate import create_db, head, where

        engine = make_engine(settings().db_url)
        applied = create_db(engine)
        place = where(engine)
        engine.dispose()
        if as_json:
            emit({"database": place, "applied": applied, "revision": head()})
        else:
            out.print(f"{'created' if applied else 'already up to date:'} {place} (schema revision {head()})",
                      soft_wrap=True, highlight=False)
    run(body, as_json)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply pending schema migrations to the existing database (every command also does this on start)."""
    def body() -> None:
        from crisis.store.db import make_engine
        from crisis.store.migrate import head, require_exists, upgrade_db, where

        url = settings().db_url
        require_exists(url)
        engine = make_engine(url)
        applied = upgrade_db(engine)
        place = where(engine)
        engine.dispose()
        if as_json:
            emit({"database": place, "applied": applied, "revision": head()})
        else:
            what = f"applied {', '.join(applied)}" if applied else "already up to date"
            out.print(f"{place}: {what} (schema revision {head()})", soft_wrap=True, highlight=False)
    run(body, as_json)
