"""Shared parts of the `crisis` command line for the duty officer, on-call administrators and drill facilitators.

A thin adapter: parse arguments, call the service, print with rich (or JSON with --json).
Every error exits with status 2 and a one-line message; under --json it is the API's error body
`{"error": {"code", "message", "field", ...}}` (crisis.errors maps the types); no traceback reaches the user.
A failure that is not a CrisisError is a bug: its traceback goes to the log file.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from typer.core import TyperGroup

from crisis import jsonout
from crisis.console import SafeTable, fit_width, styled, table
from crisis.errors import EXIT_STATUS, CrisisError, GuardFailed, InputError, error_body, problem

if TYPE_CHECKING:  # the engine, the database layer and the models load when a command runs, not for --help
    from crisis.principal import Principal
    from crisis.roster import Roster
    from crisis.service import CrisisService
    from crisis.settings import Settings
    from crisis.store.lite import SQLiteFile

try:
    from typer._click.exceptions import UsageError  # recent typer vendors its own click
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import UsageError  # type: ignore[no-redef]


class CrisisGroup(TyperGroup):
    """The top-level group: under --json, a usage error (bad option, a value click refuses) is JSON too."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        wants_json = "--json" in args
        ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["crisis_json"] = wants_json
        return ctx

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            if not ctx.meta.get("crisis_json"):
                raise
            param = getattr(exc, "param", None)  # a value click refused names its parameter
            field = getattr(param, "name", None) or getattr(exc, "option_name", None)
            print(json.dumps(problem(422, exc.format_message(), field), ensure_ascii=False))
            raise typer.Exit(EXIT_STATUS) from None


app = typer.Typer(cls=CrisisGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Public-opinion crisis response: incidents, tasks, escalations, drills.")


out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {}

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who acts (person id from the roster); "
                                                        "default $CRISIS_USER or the roster's duty officer.")]


@app.callback()
def _main(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(help="Database URL (default $CRISIS_DB_URL or store/crisis.db).")] = None,
    roster: Annotated[Path | None, typer.Option(help="Roster YAML (default examples/roster.yaml).")] = None,
    playbooks: Annotated[Path | None, typer.Option(help="Playbook folder (default playbooks/).")] = None,
) -> None:
    from crisis.settings import load_settings

    try:  # a bad environment value (CRISIS_TZ=Mars/Olympus) is exit 2 naming the variable, JSON under --json
        settings = load_settings().with_overrides(db_url=db, roster_path=roster, playbooks_dir=playbooks)
    except CrisisError as exc:
        fail(exc, bool(ctx.meta.get("crisis_json")))
    _state["settings"] = settings
    fit_width(out)


# Start-up allocates a few hundred thousand objects that live as long as the process (modules, classes, the ORM
# mappers, pydantic and SQLAlchemy internals) and no garbage worth collecting; at Python's default thresholds the
# cyclic collector walks them over and over (~0.1 s of a write command's ~0.8 s CPU, and ~0.05 s more at exit).
_STARTUP_GC_THRESHOLD = 100_000


def startup_gc() -> None:
    """In the `crisis` process itself (not when tests or the API import this module): collect rarely until the
    service is built, then freeze what start-up loaded (later collections, and the one at exit, skip it) and go
    back to the usual thresholds, so a long-running command (serve, scheduler) collects as usual."""
    _state["gc_threshold"] = gc.get_threshold()
    gc.set_threshold(_STARTUP_GC_THRESHOLD, *_state["gc_threshold"][1:])


def loaded() -> None:
    """Start-up is over (crisis.cli.common.startup_gc): freeze what it loaded, collect at the usual thresholds."""
    threshold = _state.pop("gc_threshold", None)
    if threshold is not None:
        gc.freeze()
        gc.set_threshold(*threshold)


def settings() -> Settings:
    from crisis.settings import load_settings

    return _state.get("settings") or load_settings()


def service() -> CrisisService:
    if "service" not in _state:
        from crisis import logs
        from crisis.bootstrap import build_service
        from crisis.clock import SystemClock

        s = settings()
        logs.configure(s.log_path)
        _state["service"] = build_service(s, SystemClock(), deliver=True, on_failure=warn)
        loaded()
    svc: CrisisService = _state["service"]
    return svc


class _Reader:
    """What a read command needs (crisis.views reads through `engine` and `clock`): the store as a bare sqlite3
    file and the roster parsed on first use, so `crisis show` / `list` / `escalations` never import the ORM,
    the models, Alembic or the notification stack (tests/test_cli_startup.py)."""

    def __init__(self, store: SQLiteFile) -> None:
        from crisis.clock import SystemClock

        self.engine, self.clock = store, SystemClock()
        self._roster: Roster | None = None

    @property
    def roster(self) -> Roster:
        if self._roster is None:
            from crisis.roster import load_roster

            self._roster = load_roster(settings().roster_path, settings().cache_dir)
        return self._roster


def reader() -> CrisisService | _Reader:
    """The light reader when the store is a SQLite file already at this code's schema; otherwise the service
    (a store that is missing or behind — `open_db` says so or upgrades it — or PostgreSQL)."""
    if "service" not in _state and "reader" not in _state:
        from crisis.store.lite import open_current

        store = open_current(settings().db_url)
        if store is not None:
            _state["reader"] = _Reader(store)
    return _state.get("reader") or service()


def principal(by: str | None) -> Principal:
    """Who acts at the shell: `--by`, else $CRISIS_USER, else the duty officer; the service checks the roster."""
    from crisis.principal import Principal

    who = by or settings().user or service().roster.roles.get("duty_officer")
    if not who:
        raise InputError("say who acts with --by (or set CRISIS_USER)", field="--by")
    return Principal(person=who, auth="cli")


def deliver() -> None:
    """Deliver what was queued outside a service command (`crisis tick` fires on the engine's own path).

    After each command the service delivers by itself (crisis.bootstrap): the person who acted is told, one
    warning line per failed notification naming the channel and the recipient; the outbox keeps it for a retry."""
    svc = service()
    if svc.after_commit is not None:
        svc.after_commit()


def warn(message: str) -> None:
    """One warning line on stderr (stdout stays clean for --json)."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(exc: CrisisError, as_json: bool) -> NoReturn:
    """Print one error line (the API's error body under --json) and exit with status 2. A move blocked by open
    required tasks says how leadership goes on at the shell."""
    hint = ' (--override --reason "...")' if isinstance(exc, GuardFailed) else ""
    _fail(str(exc) + hint, error_body(exc), as_json)


def _fail(line: str, body: dict[str, Any], as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps(body, ensure_ascii=False))
    else:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_STATUS)


def run(fn: Callable[[], Any], as_json: bool) -> None:
    """Run a command body; every failure becomes exit status 2 with one clear line."""
    try:
        fn()
    except CrisisError as exc:
        fail(exc, as_json)
    except OSError as exc:  # a path given to us: --out, a report folder, the notification file
        where = f"{exc.filename}: " if exc.filename else ""
        fail(InputError(f"cannot use {where}{exc.strerror or exc}"), as_json)
    except Exception as exc:  # a bug: one line here, the traceback in the log
        from crisis import logs

        logs.get_logger().exception("internal_error", error=repr(exc))
        line = f"internal error ({type(exc).__name__}: {exc}); details in the log"
        _fail(line, problem(500, line), as_json)


Table = SafeTable  # every CLI table: cells are data (never markup), columns fold instead of "monitor…"


def esc(value: object) -> str:
    """A value (user text: titles, reasons, names, error messages) inside a Rich markup string: shown
    literally, never parsed, so a title containing `[/]` cannot break or restyle the output."""
    return escape(str(value))


def emit(data: Any) -> None:
    print(jsonout.dumps(data))


def dump(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = jsonout.encode(row)
    return out


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 as pydantic writes it in the rows (…Z), so JSON output is uniform."""
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def local(dt: datetime | None) -> str:
    """Times on screen are in the hospital's zone (CRISIS_TZ), not the server's."""
    from crisis.settings import zone

    return dt.astimezone(zone(settings().tz)).strftime("%m-%d %H:%M") if dt else "-"


def parse_kv(pairs: list[str], what: str) -> dict[str, float]:
    outd: dict[str, float] = {}
    for p in pairs:
        name, sep, value = p.partition("=")
        if not sep or not name:
            raise InputError(f"expected NAME=NUMBER, got {p!r}", field=what)
        try:
            outd[name] = float(value) if "." in value else int(value)
        except ValueError:
            raise InputError(f"{name}: {value!r} is not a number", field=what) from None
    return outd




def _task_table(svc: CrisisService | _Reader, incident_id: int, tasks: list[Any] | None = None) -> None:
    """The incident's tasks (those given: a view's snapshot; else read now), cancelled ones left out."""
    from crisis import views
    from crisis.roster import GROUP_NAMES

    t = table("task", "stage", "group", "title", "assignee", "due", "status", "esc", wrap=("group", "title"))
    now = svc.clock.now()
    for task in tasks if tasks is not None else views.incident_tasks(svc, incident_id):
        if task.status in ("cancelled",):
            continue
        status: str | Text = task.status
        if task.status == "open" and task.due_at and task.due_at < now:
            status = styled("overdue", "red")
        t.add_row(str(task.id), task.stage, GROUP_NAMES[task.group][0], task.title_zh,
                  svc.roster.name(task.assignee), local(task.due_at), status,
                  str(task.escalation_level) + (" ack" if task.acked_at else ""))
    out.print(t)
