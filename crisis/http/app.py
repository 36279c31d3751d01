"""The FastAPI application: routers under /api/v1, the one error shape, the body-size guard.

`create_app` takes a built service (and its accounts), so tests, `crisis serve` and the benchmark run the
same app on whatever database and clock they chose; nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from crisis import web
from crisis.accounts import Accounts
from crisis.http import api, auth, errors, oncall, signals
from crisis.service import CrisisService

API = "/api/v1"


def create_app(svc: CrisisService, accounts: Accounts, *, deliver: Callable[[], Any] | None = None,
               signals_secret: str | None = None, signals_person: str | None = None,
               tz: str = "Asia/Shanghai", health: Callable[[], dict[str, Any]] | None = None,
               ack_secret: bytes | None = None) -> FastAPI:
    """The API for `svc`. `deliver` runs after each command (notification delivery); `signals_secret`
    enables HMAC-signed signals, which act as `signals_person` (default: the roster's duty officer);
    `health` reports the in-process scheduler's state; `ack_secret` signs the web's one-tap ack links."""
    app = FastAPI(title="crisis", summary="Public-opinion crisis response: incidents, tasks, escalations.",
                  version="1", openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs", redoc_url=None)
    app.state.svc, app.state.accounts, app.state.tz = svc, accounts, tz
    app.state.deliver = deliver or (lambda: None)
    app.state.signals_secret = signals_secret
    app.state.signals_person = signals_person or svc.roster.roles.get("duty_officer") or svc.roster.leadership_head()
    app.state.health = health
    errors.install(app)
    app.include_router(auth.router, prefix=API)
    app.include_router(api.router, prefix=API)
    app.include_router(signals.router, prefix=API)
    app.include_router(oncall.router, prefix=API)
    web.install(app, ack_secret=ack_secret)  # the pages (crisis/web) on the same app and sessions

    @app.get(f"{API}/health", tags=["health"])
    async def health_check(request: Request) -> JSONResponse:
        """For monitors (no credentials): the database answers and a scheduler fires deadlines (else 503)."""
        return await run_in_threadpool(_health, request)

    return app


def _health(request: Request) -> JSONResponse:
    """200 when the database answers and a scheduler is firing deadlines on it (in this process or another);
    503 otherwise, so a monitor notices a silent outage."""
    svc: CrisisService = request.app.state.svc
    try:
        sched = svc.scheduler_health()
    except Exception as exc:  # a health check reports, it does not fail
        errors.get_logger(component="http").error("health_db_failed", error=repr(exc))
        return JSONResponse({"status": "failing", "database": "unreachable"}, status_code=503)
    body: dict[str, Any] = {"status": "ok", "database": "ok", "scheduler": sched.as_dict()}
    healthy = sched.healthy
    if request.app.state.health is not None:  # the scheduler runs in this process: is its loop alive?
        here = request.app.state.health()
        body["scheduler"]["in_process"] = api.encode(here)
        healthy = healthy and here.get("ok") is not False
    if not healthy:
        body["status"] = "failing"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
