"""Read-only reference pages: playbooks per category and grade (tasks, deadlines, escalation chains)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crisis.errors import CrisisError
from crisis.http.errors import crisis_status
from crisis.web.pages import problem, render, signed_in

router = APIRouter(include_in_schema=False)


def outline(svc: Any, category: str, grade: str) -> dict[str, Any]:
    from crisis.durations import format_duration
    from crisis.severity import Severity

    pb = svc.playbooks.get(category)
    sev = Severity.parse(grade)
    rows = [{"stage": st, "key": t.key, "group": t.group, "title": {"zh": t.title.zh, "en": t.title.en},
             "required": t.required,
             "due": format_duration(t.due[sev]) if t.due else "-",
             "escalate": t.escalate}
            for st, spec in pb.stages.items() for t in spec.tasks]
    return {"category": pb.category, "grade": sev.value, "rows": rows}


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
                                              "grades": ("I", "II", "III", "IV")}, ident=ident)
