"""`crisis scheduler …`: the process that fires deadlines."""

from __future__ import annotations

from typing import Annotated

import typer

from crisis.cli.common import (
    run,
    settings,
)

scheduler_app = typer.Typer(no_args_is_help=True, help="The process that fires deadlines and escalations.")

@scheduler_app.command("run")
def scheduler_run(sweep: Annotated[float, typer.Option(help="Safety-net sweep interval, seconds.")] = 30.0) -> None:
    """Run the scheduler (one per database): fires deadlines, survives restarts, delivers notifications."""
    def body() -> None:
        from crisis import scheduler

        scheduler.run(settings(), sweep_seconds=sweep)
    run(body, False)
