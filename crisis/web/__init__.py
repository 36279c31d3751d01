"""The web workspace: server-rendered pages (Jinja2, htmx) on the same FastAPI app as the API."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI, *, ack_secret: bytes | None = None) -> None:
    """Mount the pages and their static files on `app` (whose state carries svc, accounts, tz, deliver)."""
    from crisis.web import ack, library, routes

    app.state.ack_secret = ack_secret
    app.mount("/static", StaticFiles(directory=str(resources.files("crisis.web") / "static")), name="static")
    app.include_router(routes.router)
    app.include_router(ack.router)
    app.include_router(library.router)
