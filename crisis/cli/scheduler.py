"""`crisis scheduler …`: the process that fires deadlines."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from crisis.cli.common import (
    JsonOpt,
    emit,
    loaded,
    local,
    out,
    run,
    service,
    settings,
)
from crisis.durations import format_duration

scheduler_app = typer.Typer(no_args_is_help=True, help="The process that fires deadlines and escalations.")

@scheduler_app.command("run")
def scheduler_run(sweep: Annotated[float, typer.Option(help="Safety-net sweep interval, seconds.")] = 30.0) -> None:
    """Run the scheduler (one per database): fires deadlines, survives restarts, delivers notifications."""
    def body() -> None:
        from crisis import scheduler

        loaded()  # a long-running process: the collector back to its usual thresholds
        scheduler.run(settings(), sweep_seconds=sweep)
    run(body, False)


@scheduler_app.command("status")
def scheduler_status(as_json: JsonOpt = False) -> None:
    """Is a scheduler firing deadlines on this database? Last cycle, next wake-up, pending escalations.
    Exit status 0 when it is running, 1 when it is stopped, stale (hung or killed) or never started."""
    healthy = False

    def body() -> None:
        nonlocal healthy
        svc = service()
        h = svc.scheduler_health()
        healthy = h.healthy
        if as_json:
            emit(h.as_dict())
            return
        now = svc.clock.now()
        ago = f" ({format_duration(now - h.last_cycle_at)} ago)" if h.last_cycle_at else ""
        who = f" · pid {h.pid} on {escape(h.host or '?')}, started {local(h.started_at)}" if h.pid else ""
        out.print(f"scheduler: [bold]{h.state}[/]{who}", highlight=False, soft_wrap=True)
        out.print(f"last cycle: {local(h.last_cycle_at)}{ago} · next wake-up: {local(h.next_wake_at)} · "
                  f"pending escalations: {h.pending}", highlight=False, soft_wrap=True)
        if h.stopped_at:
            out.print(f"stopped {local(h.stopped_at)}: {h.stop_reason}", highlight=False, markup=False, soft_wrap=True)
        if h.last_error:
            out.print(f"last cycle failed: {h.last_error}", highlight=False, markup=False, soft_wrap=True)
    run(body, as_json)
    if not healthy:
        raise typer.Exit(1)
