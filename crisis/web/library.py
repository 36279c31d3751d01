"""Read-only reference pages: playbooks per category and grade (tasks, deadlines, escalation chains)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crisis import views
from crisis.durations import format_duration
from crisis.errors import CrisisError, InputError
from crisis.web.pages import Reader, render
from crisis.web.problems import refused

router = APIRouter(include_in_schema=False)


def outline(svc: Any, category: str, grade: str) -> views.PlaybookOutline:
    """The playbook for one grade as `crisis playbooks show` and the API print it (crisis.views)."""
    from crisis.severity import Severity

    return views.playbook_outline(svc.playbooks.get(category), Severity.parse(grade))


@router.get("/playbooks")
async def playbooks(request: Request, ident: Reader) -> Response:
    svc = request.app.state.svc
    category = request.query_params.get("category") or sorted(svc.playbooks.categories)[0]
    try:
        book = outline(svc, category, request.query_params.get("grade", "II"))
    except ValueError as exc:  # an unknown grade
        return refused(request, InputError(str(exc), field="grade"), ident, "/playbooks")
    except CrisisError as exc:
        return refused(request, exc, ident, "/playbooks")
    return render(request, "playbooks.html", {"book": book, "categories": sorted(svc.playbooks.categories),
                                              "grades": ("I", "II", "III", "IV"), "dur": format_duration},
                  ident=ident)
