"""`crisis drill …`: tabletop drills in virtual time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from crisis.cli.common import (
    JsonOpt,
    emit,
    fail,
    out,
    run,
    settings,
)

drill_app = typer.Typer(no_args_is_help=True, help="Tabletop drills in virtual time.")

@drill_app.command("run")
def drill_run(
    scenario: Annotated[list[Path], typer.Argument(help="Scenario files or folders, replayed together on one clock.")],
    speed: Annotated[float | None, typer.Option(help="Virtual seconds per real second (e.g. 600).")] = None,
    instant: Annotated[bool, typer.Option(help="Jump from event to event (default).")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Reports folder (default reports/drills/RUN).")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL for the drill (default store/drills/RUN.db).")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone for reports (default CRISIS_TZ).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay drill scenarios on the embedded store; print the timeline and a scorecard, write reports.

    Several files (or a folder) are replayed on one clock, their incidents competing for the same people."""
    from crisis.drill.cli import run_drill_command

    if speed is not None and instant:
        fail("--speed and --instant exclude each other", "InputError", as_json)
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        fail(f"--speed must be a number greater than zero, got {speed}", "InputError", as_json)
    run(lambda: run_drill_command(scenario, speed=speed, out_dir=out_dir, db_url=db, tz=tz or settings().tz,
                                  as_json=as_json,
                                  settings=settings(), console=out), as_json)


@drill_app.command("validate")
def drill_validate(scenario: Path, as_json: JsonOpt = False) -> None:
    """Check a scenario against the playbooks and roster without running it."""
    def body() -> None:
        from crisis.drill.cli import load_checked

        ls, _, _ = load_checked(scenario, settings())
        emit({"ok": True, "steps": len(ls.scenario.steps)}) if as_json else out.print(
            f"ok: {ls.scenario.name}, {len(ls.scenario.steps)} steps")
    run(body, as_json)
