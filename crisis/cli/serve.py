"""`crisis serve`: the HTTP API and, unless --no-scheduler, the scheduler, in one process."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crisis.cli.common import app, err, run, service, settings

if TYPE_CHECKING:
    from crisis.notify.dispatch import Dispatcher
    from crisis.scheduler import Runner


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
        from crisis.bootstrap import build_channels, build_dispatcher
        from crisis.http.app import create_app

        svc, cfg = service(), settings()
        channels = build_channels(cfg)
        delivery = build_dispatcher(cfg, svc, channels)
        ctx = contextlib.nullcontext() if no_scheduler else scheduler.background(
            svc, channels, svc.clock, sweep_seconds=sweep, dispatcher=delivery)
        with ctx as runner:
            svc.after_commit = _after_command(delivery, runner)  # the service runs it after each command
            app_ = create_app(svc, Accounts(svc.engine, svc.roster, svc.clock), signals_secret=cfg.signals_secret,
                              tz=cfg.tz, ack_secret=cfg.notify.ack_secret.encode() if cfg.notify.ack_secret else None,
                              health=None if runner is None else lambda: _health(runner))
            err.print(f"crisis web on http://{host}:{port}/ and API on /api/v1 (docs /api/v1/docs); scheduler "
                      f"{'not started' if no_scheduler else 'running'}", highlight=False, soft_wrap=True)
            # uvicorn re-raises the stop signal once it has shut down; with these handlers in place that
            # returns here instead of killing the process, so the scheduler stops cleanly too.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda _signum, _frame: None)
            uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)
    run(body, False)


def _after_command(delivery: Dispatcher, runner: Runner | None) -> Callable[[], None]:
    """What runs after each API command: with the scheduler in this process, wake it (a new deadline may be
    the next one) and let its delivery thread send what was queued; without it, deliver in the request."""
    if runner is None:
        def deliver_here() -> None:
            delivery.drain()

        return deliver_here

    def wake_and_deliver() -> None:
        runner.request_wake("api")
        runner.deliverer.kick()

    return wake_and_deliver


def _health(runner: Runner) -> dict[str, Any]:
    """The in-process scheduler's state for /api/v1/health (503 when its loop has died)."""
    alive = runner.thread is not None and runner.thread.is_alive()
    return {"ok": alive, "in_process": True, "loop_alive": alive, "cycles": runner.cycles,
            "delivered": runner.deliverer.delivered}
