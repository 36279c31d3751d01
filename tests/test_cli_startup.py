"""`crisis --help` stays light, and so do the read commands (`show`, `list`, `escalations`) on a SQLite store at
this code's schema: the engine, the ORM, the models, Alembic and the notification stack load only when a command
writes (or the store must be upgraded). A guard against a top-level import undoing the start-up work (timings
are in benchmarks/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import CATEGORY, PLAYBOOKS_DIR, ROOT, ROSTER_PATH, crisis_env

HEAVY = ["sqlalchemy", "sqlmodel", "alembic", "crisis.service", "crisis.store.models", "crisis.store.db",
         "crisis.config", "crisis.bootstrap", "crisis.notify.dispatch", "crisis.notify.channels", "structlog"]
# Never loaded by a command: the settings are read without pydantic-settings (crisis.settings), and structlog is
# imported without rich's traceback renderer and pygments (crisis.logs), which its JSON lines never use.
NEVER = ["pydantic_settings", "rich.traceback", "rich.pretty", "pygments"]

PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["crisis", *args]
code = 0
from crisis.cli import app
try:
    app()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules], "code": code}))
"""


def probe(args: list[str], heavy: list[str], env: dict[str, str] | None = None) -> tuple[list[str], int, str]:
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(heavy)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    *printed, last = res.stdout.strip().splitlines()
    got = json.loads(last)
    return got["loaded"], got["code"], "\n".join(printed)


def test_help_loads_no_engine_database_or_models():
    assert probe(["--help"], [*HEAVY, "pydantic"])[0] == []


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with one incident, opened (and so escalated later) through the real CLI."""
    tmp = tmp_path_factory.mktemp("startup")
    env = {**os.environ, **crisis_env(tmp), "COLUMNS": "160"}
    subprocess.run([sys.executable, "-m", "crisis", "open", "--title", "t", "--category", CATEGORY, "--by",
                    "duty_officer"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    return env


@pytest.mark.parametrize("args", [["show", "1"], ["show", "1", "--json"], ["list"], ["list", "--json", "--all"],
                                  ["escalations", "--pending"], ["escalations", "--json"], ["show", "2"],
                                  ["task", "list", "1"], ["task", "list", "1", "--json"]])
def test_read_commands_load_no_orm_models_or_delivery(store, args):
    tables = [] if "--json" in args else ["orjson"]  # (indented JSON's encoder: loaded on first use)
    loaded, code, printed = probe(args, [*HEAVY, *NEVER, *tables], store)
    assert loaded == []
    assert code == (2 if args == ["show", "2"] else 0)  # a missing incident is still the usual one-line error
    if args[:2] == ["show", "1"]:
        assert "#1" in printed or '"id": 1' in printed


def test_a_store_behind_is_upgraded_through_the_full_path(store, tmp_path):
    """A database at an older revision is not read raw: the command opens it the usual way (and upgrades it)."""
    import shutil
    import sqlite3

    from alembic import command

    from crisis.store import migrate
    from crisis.store.db import make_engine

    db = tmp_path / "old.db"
    shutil.copyfile(store["CRISIS_DB_URL"].removeprefix("sqlite:///"), db)
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # as the release before this one left it
        command.downgrade(migrate._config(conn), migrate.revisions()[migrate.head()])
    engine.dispose()
    loaded, code, printed = probe(["list", "--json"], ["sqlalchemy", "alembic"],
                                  {**store, "CRISIS_DB_URL": f"sqlite:///{db}"})
    assert code == 0 and "sqlalchemy" in loaded, printed
    assert [i["id"] for i in json.loads(printed)] == [1]
    con = sqlite3.connect(db)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == migrate.head()
    con.close()


# What a write command never needs: the web and API stack, report rendering, drills, the scheduler, Alembic on a
# store at this code's revision, a notification channel this deployment did not configure (SMTP, chat robots), the
# accounts' tables, SQLAlchemy's PostgreSQL dialect on a SQLite store (crisis.store.models says why), the read
# models other than one incident's (crisis.views loads each module on first use), and SQLModel,
# the ORM and the models: the write path runs Core statements on crisis.store.tables and returns records.
NOT_FOR_WRITES = ["sqlmodel", "sqlalchemy.orm", "crisis.store.models",
                  "fastapi", "starlette", "uvicorn", "httpx", "jinja2", "apscheduler", "alembic", "crisis.http",
                  "crisis.web", "crisis.reports", "crisis.report_pdf", "crisis.drill", "crisis.scheduler",
                  "crisis.notify.chat", "crisis.notify.email", "smtplib", "crisis.store.auth_models",
                  "sqlalchemy.dialects.postgresql", "crisis.views.lists", "crisis.views.outline",
                  "crisis.views.drills", *NEVER]


def test_write_commands_load_only_the_write_path(tmp_path):
    """open, task applicable, task done, fire, regrade and ack commit, deliver to the file channel in the same
    process, and load nothing more; once a command has parsed the playbooks and the roster, the next ones read
    them from the parse cache (crisis.yamlsrc) without loading PyYAML."""
    shutil.copytree(PLAYBOOKS_DIR, tmp_path / "playbooks")
    shutil.copy(ROSTER_PATH, tmp_path / "roster.yaml")
    for f in [*(tmp_path / "playbooks").iterdir(), tmp_path / "roster.yaml"]:
        os.utime(f, (0, 0))  # as deployed files are: not changed within the last seconds
    env = {**os.environ, **crisis_env(tmp_path, tmp_path / "playbooks"), "COLUMNS": "160",
           "CRISIS_ROSTER": str(tmp_path / "roster.yaml")}
    notes = tmp_path / "notifications.jsonl"

    def write(n: int, args: list[str]) -> str:
        before = notes.read_text(encoding="utf-8").count("\n") if notes.exists() else 0
        loaded, code, printed = probe(args, [*NOT_FOR_WRITES, *(["yaml"] if n else [])], env)
        assert (loaded, code) == ([], 0), (args, printed)
        if args[0] == "open":
            assert "opened incident" in printed and notes.read_text(encoding="utf-8").count("\n") > before
        return printed

    for n, args in enumerate((["open", "--title", "t", "--category", CATEGORY, "--by", "duty_officer"],
                              ["task", "applicable", "2", "--reason", "evidence matters", "--by", "president"],
                              ["task", "done", "1", "--by", "duty_officer"],
                              ["task", "done", "2", "--by", "duty_officer"],
                              ["fire", "1", "report", "--by", "duty_officer"])):
        write(n, args)
    assert "grade II → I" in write(1, ["regrade", "1", "--severity", "I", "--reason", "spreading", "--by",
                                         "president"])
    _fire_overdue(env)
    assert "acknowledged escalation #1" in write(1, ["ack", "1", "--by", "president"])


def _fire_overdue(env: dict[str, str]) -> None:
    """Fire the escalations of the open tasks as a scheduler would a day later (in this process)."""
    from datetime import UTC, datetime, timedelta

    from crisis.bootstrap import build_service
    from crisis.clock import VirtualClock
    from crisis.settings import load_settings

    later = datetime.now(UTC) + timedelta(days=1)
    settings = load_settings(db_url=env["CRISIS_DB_URL"], playbooks_dir=env["CRISIS_PLAYBOOKS"],
                             roster_path=env["CRISIS_ROSTER"], notify_file=env["CRISIS_NOTIFY_FILE"])
    svc = build_service(settings, VirtualClock(later))
    assert svc.tick(later)
    svc.engine.dispose()


BUILT = """
import json, sys
import typer.main
built = []
real = typer.main.get_command_from_info
def counted(command_info, **kw):
    command = real(command_info, **kw)
    built.append(command.name)
    return command
typer.main.get_command_from_info = counted
sys.argv = ["crisis", *json.loads(sys.argv[1])]
from crisis.cli import app, main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"built": built, "code": code, "left": len(app.registered_commands)}))
"""


@pytest.mark.parametrize(("args", "built"), [
    (["show", "--help"], ["show"]), (["--db", "sqlite:///nowhere.db", "list", "--help"], ["list"]),
    (["--playbooks=x", "escalations", "--help"], ["escalations"]), (["task", "--help"], ["done", "applicable", "list"]),
    (["--help"], None), (["shw"], None), ([], None), (["--db"], None)])
def test_a_run_builds_only_the_command_it_invokes(args, built):
    """`crisis` turns only the invoked command (or group) into a click command; --help, a name that matches none
    (click's "did you mean") and anything unusual get the whole tree, as before."""
    res = subprocess.run([sys.executable, "-c", BUILT, json.dumps(args)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    got = json.loads(res.stdout.strip().splitlines()[-1])
    if built is None:
        assert len(got["built"]) > 30 and got["code"] in (0, 2)
    else:
        assert sorted(got["built"]) == sorted(built) and got["code"] == 0
    assert got["left"] > 10  # the app is whole again afterwards


def test_the_top_level_options_that_take_a_value_are_known():
    """crisis.cli.invoked skips these with their values to find the command name: the callback's own list."""
    from typer.main import get_command

    from crisis.cli import GLOBAL_VALUE_OPTIONS, app, invoked

    group = get_command(app)
    takes_value = {o for p in group.params if not getattr(p, "is_flag", False) for o in p.opts}
    assert set(GLOBAL_VALUE_OPTIONS) == takes_value - {"--help"}
    assert invoked(["--db", "open", "list"]) == "list" and invoked(["--roster=x", "open"]) == "open"
    assert invoked(["--help"]) is invoked(["--", "open"]) is invoked(["--db"]) is invoked([]) is None
