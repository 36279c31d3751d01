"""The web workspace's routes: login, board, incident page, my work, one-tap acknowledgement, playbooks.

Each handler checks who is signed in, calls the same service commands as the API (one transaction each; the
service asks the policy), and renders a page. A refused or stale action renders a clear page; nothing is
changed then. Reads go through `crisis.views`, the read models the CLI and the API use (a fixed number of
queries per page).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from crisis import views
from crisis.engine.fsm import FINAL, STAGES
from crisis.errors import CrisisError
from crisis.http.auth import Identity, change_password, sign_in, sign_out
from crisis.http.errors import crisis_status
from crisis.principal import Principal
from crisis.service import CrisisService
from crisis.web import incident_view
from crisis.web.pages import Reader, Writer, now_of, pager, render
from crisis.web.problems import refused

router = APIRouter(include_in_schema=False)
BOARD_LIMIT = 200
# board tab → incident_list's (final, watch-listed included, stage): open leaves the watch list out
BOARD_VIEWS: dict[str, tuple[bool, bool, str | None]] = {
    "open": (False, False, None), "watch": (False, True, "watch"), "closed": (True, False, None)}


def svc_of(request: Request) -> CrisisService:
    svc: CrisisService = request.app.state.svc
    return svc


async def act(request: Request, ident: Identity, fn: Callable[[], Any], back: str) -> Response:
    """Run a service command in the thread pool; on success go back (303), on refusal show why."""
    try:
        await run_in_threadpool(fn)
    except CrisisError as exc:  # a conflict (409) says "someone changed this — reload the page"
        return refused(request, exc, ident, back)
    request.app.state.deliver()
    return RedirectResponse(back, status_code=303)


def principal(ident: Identity) -> Principal:
    return Principal(person=ident.person, auth=ident.auth)  # type: ignore[arg-type]


# ------------------------------------------------------------------ sign-in
@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "login.html", {"next": request.query_params.get("next", "/"), "error": None})


@router.post("/login")
async def login(request: Request, person: str = Form(...), password: str = Form(...),
                next: str = Form("/")) -> Response:
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    res = RedirectResponse(target, status_code=303)
    try:
        await sign_in(request, res, person.strip(), password)
    except CrisisError as exc:
        return render(request, "login.html", {"next": target, "error": str(exc)}, status=crisis_status(exc))
    return res


@router.post("/logout")
async def logout(request: Request, ident: Writer) -> Response:
    res = RedirectResponse("/login", status_code=303)
    await sign_out(request, res)
    return res


@router.get("/password")
async def password_page(request: Request, ident: Reader) -> Response:
    return render(request, "password.html", {"done": False, "error": None}, ident=ident)


@router.post("/password")
async def password_change(request: Request, ident: Writer, current: str = Form(...), new: str = Form(...)) -> Response:
    """The same change as the API's (`crisis.http.auth.change_password`): this browser stays signed in."""
    try:
        await change_password(request, ident, current, new)
    except CrisisError as exc:
        return render(request, "password.html", {"done": False, "error": str(exc)}, ident=ident,
                      status=crisis_status(exc))
    return render(request, "password.html", {"done": True, "error": None}, ident=ident)


# ------------------------------------------------------------------ board and my work
PAGE_SIZE = 50  # incidents per board page unless ?size= asks otherwise (1 … BOARD_LIMIT)


def _int(value: str | None, default: int, low: int, high: int) -> int:
    """A whole number from the query string, bounded; anything unreadable is the default."""
    try:
        return min(max(int(value or default), low), high)
    except ValueError:
        return default


def _board_ctx(request: Request) -> dict[str, Any]:
    """One page of the board (newest first); the page number and size are bounded, a page past the end
    shows the last one."""
    q = request.query_params
    view = q.get("view", "open") if q.get("view") in BOARD_VIEWS else "open"
    final, watch, tab_stage = BOARD_VIEWS[view]
    size = _int(q.get("size"), PAGE_SIZE, 1, BOARD_LIMIT)
    page = _int(q.get("page"), 1, 1, 10**6)
    svc = svc_of(request)

    def read(page: int) -> Any:
        return views.incident_list(svc, stage=tab_stage or q.get("stage") or None, category=q.get("category") or None,
                                   final=final, watch=watch, limit=size, offset=(page - 1) * size)

    board = read(page)
    pages = max(1, -(-board.total // size))
    if page > pages:
        page = pages
        board = read(page)
    failed = svc.outbox(failed=True, limit=10)[::-1]  # newest first, as `crisis outbox --failed`
    stages = {"open": [s for s in STAGES if s not in FINAL and s != "watch"], "watch": [],
              "closed": list(FINAL)}[view]
    return {"board": board, "failed": failed, "view": view, "stage": q.get("stage", ""),
            "category": q.get("category", ""), "categories": sorted(svc.playbooks.categories), "query": str(q),
            "stages": stages, "page": page, "pages": pages, "size": size, "pager": pager(q, page, pages)}


@router.get("/")
async def board_page(request: Request, ident: Reader) -> Response:
    ctx = await run_in_threadpool(_board_ctx, request)
    return render(request, "board.html", ctx, ident=ident)


@router.get("/board/rows")
async def board_rows(request: Request, ident: Reader) -> Response:
    """The board's live part, polled by htmx every few seconds (signed out: 401, see pages.reader)."""
    ctx = await run_in_threadpool(_board_ctx, request)
    return render(request, "board_rows.html", ctx, ident=ident)


@router.get("/my")
async def my_work(request: Request, ident: Reader) -> Response:
    work = await run_in_threadpool(views.my_work, svc_of(request), ident.person)
    return render(request, "my.html", {"work": work}, ident=ident)


# ------------------------------------------------------------------ incident page and its actions
@router.get("/incidents/{incident_id}")
async def incident_page(incident_id: int, request: Request, ident: Reader) -> Response:
    try:
        ctx = await run_in_threadpool(incident_view.build, svc_of(request), ident.person, incident_id,
                                      now_of(request))
    except CrisisError as exc:
        return refused(request, exc, ident, "/")
    drafted = request.query_params.get("drafted", "")
    return render(request, "incident.html", {**ctx, "drafted": int(drafted) if drafted.isdigit() else None},
                  ident=ident)


@router.post("/incidents/{incident_id}/fire")
async def fire(incident_id: int, request: Request, ident: Writer, trigger: str = Form(...), version: int = Form(...),
               decision: str = Form(""), severity: str = Form(""), override: str = Form(""),
               reason: str = Form(""), note: str = Form("")) -> Response:
    svc = svc_of(request)
    return await act(request, ident, lambda: svc.fire(
        incident_id, trigger, principal=principal(ident), decision=decision or None, severity=severity or None,
        override=bool(override), reason=reason or None, note=note or None, expected_version=version),
        f"/incidents/{incident_id}")


@router.post("/tasks/{task_id}/done")
async def task_done(task_id: int, request: Request, ident: Writer, incident: int = Form(...), version: int = Form(...),
                    note: str = Form("")) -> Response:
    svc = svc_of(request)
    return await act(request, ident, lambda: svc.complete_task(
        task_id, principal=principal(ident), note=note or None, expected_version=version), f"/incidents/{incident}")


@router.post("/escalations/{escalation_id}/ack")
async def ack(escalation_id: int, request: Request, ident: Writer, incident: int = Form(...)) -> Response:
    svc = svc_of(request)
    return await act(request, ident, lambda: svc.acknowledge(escalation_id=escalation_id, principal=principal(ident)),
                     f"/incidents/{incident}")


@router.post("/statements/{statement_id}/review")
async def review(statement_id: int, request: Request, ident: Writer, incident: int = Form(...), level: int = Form(...),
                 approve: str = Form(...), comment: str = Form("")) -> Response:
    svc = svc_of(request)
    return await act(request, ident, lambda: svc.review_statement(
        statement_id, approve=approve == "yes", comment=comment or None, expected_level=level,
        principal=principal(ident)),
        f"/incidents/{incident}")


@router.post("/statements/{statement_id}/release")
async def release(statement_id: int, request: Request, ident: Writer, incident: int = Form(...),
                  version: int = Form(...), override: str = Form(""), reason: str = Form("")) -> Response:
    """Release from the page's version; over a personal-data finding only as leadership's override with a
    reason (the service asks the policy and audits it)."""
    svc = svc_of(request)
    return await act(request, ident, lambda: svc.release_statement(
        statement_id, principal=principal(ident), override=override == "yes", reason=reason or None,
        expected_version=version), f"/incidents/{incident}")


@router.post("/incidents/{incident_id}/statements")
async def draft_statement(incident_id: int, request: Request, ident: Writer, title: str = Form(...),
                          body: str = Form(...), version: int = Form(...), next_update: str = Form(""),
                          major: str = Form("")) -> Response:
    """Draft a statement for review from the version of the incident the page showed; back on the incident page
    with the new statement and the writing rules' warnings about it."""
    svc = svc_of(request)
    made: list[Any] = []

    def run() -> None:
        made.append(svc.draft_statement(incident_id, title=title, body=body, next_update=next_update or None,
                                        major={"yes": True, "no": False}.get(major), principal=principal(ident),
                                        expected_version=version))

    res = await act(request, ident, run, f"/incidents/{incident_id}")
    if made:
        st_id = made[0].id
        return RedirectResponse(f"/incidents/{incident_id}?drafted={st_id}#statement-{st_id}", status_code=303)
    return res


@router.post("/incidents/{incident_id}/note")
async def add_note(incident_id: int, request: Request, ident: Writer, text: str = Form(...)) -> Response:
    svc = svc_of(request)
    return await act(request, ident, lambda: svc.note(incident_id, "note", text, principal=principal(ident)),
                     f"/incidents/{incident_id}")
