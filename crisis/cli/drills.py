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
from crisis.errors import InputError

drill_app = typer.Typer(no_args_is_help=True, help="Tabletop drills in virtual time.")

@drill_app.command("run")
def drill_run(
    scenario: Annotated[list[Path], typer.Argument(help="Scenario files or folders, replayed together on one clock.")],
    speed: Annotated[float | None, typer.Option(help="Virtual seconds per real second (e.g. 600).")] = None,
    instant: Annotated[bool, typer.Option(help="Jump from event to event (default).")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Reports folder (default reports/drills/RUN).")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL for the drill (default store/drills/RUN.db).")] = None,
    tz: Annotated[str | None, typer.Option(help="Time zone for reports (default CRISIS_TZ).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="md, or pdf: PDF reports as well as Markdown.")] = "md",
    as_json: JsonOpt = False,
) -> None:
    """Replay drill scenarios on the embedded store; print the timeline and a scorecard, write reports.

    Several files (or a folder) are replayed on one clock, their incidents competing for the same people."""
    from crisis.drill.cli import run_drill_command

    if speed is not None and instant:
        fail(InputError("--speed and --instant exclude each other", field="--speed"), as_json)
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        fail(InputError(f"must be a number greater than zero, got {speed}", field="--speed"), as_json)
    if fmt not in ("md", "pdf"):
        fail(InputError(f"unknown format {fmt!r} (use md, pdf)", field="--format"), as_json)
    run(lambda: run_drill_command(scenario, speed=speed, out_dir=out_dir, db_url=db, tz=tz or settings().tz,
                                  as_json=as_json, formats=("md", "pdf") if fmt == "pdf" else ("md",),
                                  settings=settings(), console=out), as_json)


@drill_app.command("validate")
def drill_validate(
    scenario: Annotated[list[Path], typer.Argument(help="Scenario files or folders (checked as one run).")],
    as_json: JsonOpt = False,
) -> None:
    """Check scenarios against the playbooks and roster without running them."""
    def body() -> None:
        from crisis.drill.cli import load_all

        scenarios, _, _ = load_all(scenario, settings())
        rows = [{"name": ls.scenario.name, "incidents": list(ls.scenario.specs()), "steps": len(ls.scenario.steps)}
                for ls in scenarios]
        if as_json:
            emit({"ok": True, "steps": sum(r["steps"] for r in rows), "scenarios": rows})
        for r in [] if as_json else rows:
            out.print(f"ok: {r['name']}, {r['steps']} steps, incidents: {', '.join(r['incidents'])}",
                      highlight=False)
    run(body, as_json)
