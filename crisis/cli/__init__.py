"""`crisis` command line for the duty officer, on-call administrators and drill facilitators.

A thin adapter: parse arguments, call the service, print with rich (or JSON with --json).
Every user error exits with status 2 and a one-line message; nothing is changed.
One module per command group; each registers its commands on the shared `app`.
"""

import gc
import sys
from typing import Any

from typer.main import get_command_name

from crisis.cli import incidents as _incidents  # noqa: F401  (registers the top-level commands)
from crisis.cli import notify as _notify  # noqa: F401  (registers `crisis outbox`)
from crisis.cli import regrade as _regrade  # noqa: F401  (registers `crisis regrade`)
from crisis.cli import serve as _serve  # noqa: F401  (registers `crisis serve`)
from crisis.cli.accounts import token_app, user_app
from crisis.cli.common import app, startup_gc
from crisis.cli.db import db_app
from crisis.cli.drills import drill_app
from crisis.cli.notify import notify_app, oncall_app
from crisis.cli.playbooks import playbook_app
from crisis.cli.scheduler import scheduler_app
from crisis.cli.statements import statement_app
from crisis.cli.tasks import task_app

app.add_typer(task_app, name="task")
app.add_typer(drill_app, name="drill")
app.add_typer(statement_app, name="statement")
app.add_typer(playbook_app, name="playbook")
app.add_typer(scheduler_app, name="scheduler")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(oncall_app, name="oncall")
app.add_typer(notify_app, name="notify")
app.add_typer(db_app, name="db")


# The top-level options that take a value (the callback in crisis.cli.common; tests/test_cli_startup.py checks
# this list against it): what comes after one of them is its value, not a command name.
GLOBAL_VALUE_OPTIONS = ("--db", "--roster", "--playbooks")


def invoked(argv: list[str]) -> str | None:
    """The command or group `argv` names after the top-level options, or None (--help, no command, anything
    unusual): then click sees the whole command tree, as usual."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif arg.partition("=")[0] in GLOBAL_VALUE_OPTIONS:
            i += 1
        else:
            return None if arg.startswith("-") else arg
    return None


def only(name: str | None) -> tuple[list[Any], list[Any]] | None:
    """Keep only the command or group `name` on `app` (returning what was registered, to restore), when exactly
    one has that name. Typer turns every registered command into a click command on each run (signatures,
    annotations, parameters: ~20 ms for 45 commands), though a run invokes one; help, usage errors and
    "did you mean" suggestions keep the whole tree, since they come only with a name that matches none."""
    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if name is None or len(commands) + len(groups) != 1:
        return None
    before = (app.registered_commands, app.registered_groups)
    app.registered_commands, app.registered_groups = commands, groups
    return before


def main() -> None:
    """The `crisis` executable (crisis.cli.common.startup_gc says why the collector is tuned here)."""
    startup_gc()
    before = only(invoked(sys.argv[1:]))
    try:
        app()
    finally:
        if before is not None:
            app.registered_commands, app.registered_groups = before
        gc.freeze()  # the process ends here: its last collection need not walk everything still alive


__all__ = ["app", "main"]
