"""The web workspace: server-rendered pages (Jinja2, htmx) on the same FastAPI app as the API."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI, *, ack_secret: bytes | None = None, drills_dir: Path | None = None) -> None:
    """Mount the pages and their static files on `app` (whose state carries svc, accounts, tz, deliver).
    `drills_dir` is where `crisis drill run` writes its reports (default: the setting
    CRISIS_DRILLS_DIR, as the CLI)."""
    from crisis.settings import load_settings
    from crisis.web import ack, library, reports, routes
    from crisis.web.pages import PageRefused

    app.state.ack_secret = ack_secret
    app.state.drills_dir = drills_dir or load_settings().drills_dir
    app.mount("/static", StaticFiles(directory=str(resources.files("crisis.web") / "static")), name="static")
    app.add_exception_handler(PageRefused, lambda _request, exc: exc.response)  # type: ignore[arg-type,attr-defined]
    app.include_router(routes.router)
    app.include_router(ack.router)
    app.include_router(library.router)
    app.include_router(reports.router)
