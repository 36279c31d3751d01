"""Read-only reference pages: playbooks per category and grade (tasks, deadlines, escalation chains)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crisis import views
from crisis.durations import format_duration
from crisis.errors import CrisisError
from crisis.http.errors import crisis_status
from crisis.web.pages import problem, render, signed_in

router = APIRouter(include_in_schema=False)


def outline(svc: Any, category: str, grade: str) -> views.PlaybookOutline:
    """The playbook for one grade as `crisis playbooks show` and the API print it (crisis.views)."""
    from crisis.severity import Severity

    return views.playbook_outline(svc.playbooks.get(category), Severity.parse(grade))


@router.get("/playbooks")
async def playbooks(request: Request) -> Response:
    ident = await signed_in(request)
    if isinstance(ident, Response):
        return ident
    svc = request.app.state.svc
    category = request.query_params.get("category") or sorted(svc.playbooks.categories)[0]
    try:
        book = outline(svc, category, request.query_params.get("grade", "II"))
    except (CrisisError, ValueError) as exc:
        status = crisis_status(exc) if isinstance(exc, CrisisError) else 422
        return problem(request, "Not found", str(exc), status, ident, "/playbooks")
    return render(request, "playbooks.html", {"book": book, "categories": sorted(svc.playbooks.categories),
                                              "grades": ("I", "II", "III", "IV"), "dur": format_duration},
                  ident=ident)
