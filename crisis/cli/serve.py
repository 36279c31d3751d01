"""`crisis serve`: the HTTP API and, unless --no-scheduler, the scheduler, in one process."""

from __future__ import annotations

import contextlib
import signal
from typing import Annotated

import typer

from crisis.cli.common import app, err, run, service, settings


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Serve only; another process runs the "
                                                                       "scheduler.")] = False,
    sweep: Annotated[float, typer.Option(help="Scheduler safety-net sweep interval, seconds.")] = 30.0,
) -> None:
    """Run the API (JSON under /api/v1, OpenAPI at /api/v1/openapi.json) and the scheduler until Ctrl-C.

    The scheduler still takes its one-per-database leader lock: if another one runs, this refuses to start
    (use --no-scheduler to serve beside it)."""
    def body() -> None:
        import uvicorn

        from crisis import scheduler
        from crisis.accounts import Accounts
        from crisis.config import build_channels
        from crisis.http.app import create_app
        from crisis.notify.dispatch import dispatch

        svc, cfg = service(), settings()
        channels = build_channels(cfg)
        app_ = create_app(svc, Accounts(svc.engine, svc.roster, svc.clock),
                          deliver=lambda: dispatch(svc.engine, channels, svc.clock.now()),
                          signals_secret=cfg.signals_secret, tz=cfg.tz)
        ctx = contextlib.nullcontext() if no_scheduler else scheduler.background(svc, channels, svc.clock,
                                                                                  sweep_seconds=sweep)
        with ctx:
            err.print(f"crisis API on http://{host}:{port}/api/v1 (docs /api/v1/docs); scheduler "
                      f"{'not started' if no_scheduler else 'running'}", highlight=False, soft_wrap=True)
            # uvicorn re-raises the stop signal once it has shut down; with these handlers in place that
            # returns here instead of killing the process, so the scheduler stops cleanly too.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda _signum, _frame: None)
            uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)
    run(body, False)
