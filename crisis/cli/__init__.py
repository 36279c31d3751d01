"""`crisis` command line for the duty officer, on-call administrators and drill facilitators.

A thin adapter: parse arguments, call the service, print with rich (or JSON with --json).
Every user error exits with status 2 and a one-line message; nothing is changed.
One module per command group; each registers its commands on the shared `app`.
"""

import gc

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


def main() -> None:
    """The `crisis` executable (crisis.cli.common.startup_gc says why the collector is tuned here)."""
    startup_gc()
    try:
        app()
    finally:
        gc.freeze()  # the process ends here: its last collection need not walk everything still alive


__all__ = ["app", "main"]
