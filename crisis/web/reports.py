"""Reports on the web: drill runs with their scorecards and report files, and an incident's report previewed
inline in both languages with Markdown/PDF downloads. Every report is the Markdown `crisis.reports` renders
for the CLI (the same templates and figures); here it is only turned into HTML, with raw HTML switched off so
user text inside it stays text. Who may see drill results is `policy.may_view_drills`'s answer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool

from crisis import views
from crisis.durations import format_duration
from crisis.engine import policy
from crisis.errors import CrisisError, InputError
from crisis.http.auth import Identity
from crisis.principal import for_person
from crisis.web.pages import PageRefused, Reader, now_of, render
from crisis.web.problems import refused

router = APIRouter(include_in_schema=False)
LANGS = ("zh-CN", "en")
MEDIA = {"md": "text/markdown; charset=utf-8", "pdf": "application/pdf", "json": "application/json"}


def markdown_html(text: str) -> str:
    """A rendered report's Markdown as an HTML fragment: CommonMark with tables, raw HTML off (escaped)."""
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").render(text)


def drills_folder(request: Request) -> Path:
    folder: Path = request.app.state.drills_dir
    return folder


def _may_see_drills(request: Request, ident: Identity) -> None:
    svc = request.app.state.svc
    policy.enforce(policy.may_view_drills(for_person(svc.roster, ident.person, "session", now_of(request))))


async def drill_viewer(request: Request, ident: Reader) -> Identity:
    """The signed-in person if the policy lets them see drill results (else the page saying why)."""
    svc = request.app.state.svc
    try:
        policy.enforce(policy.may_view_drills(for_person(svc.roster, ident.person, "session", now_of(request))))
    except CrisisError as exc:
        raise PageRefused(refused(request, exc, ident, "/")) from None
    return ident


DrillViewer = Annotated[Identity, Depends(drill_viewer)]


async def _drill_path(request: Request, ident: Identity, relative: str) -> Path:
    """A file of a drill run, by its path under the drills folder (path tricks and missing files refused)."""
    try:
        path: Path = await run_in_threadpool(views.drill_file, drills_folder(request), relative)
    except CrisisError as exc:
        raise PageRefused(refused(request, exc, ident, "/drills")) from None
    return path


@router.get("/drills")
async def drills(request: Request, ident: DrillViewer) -> Response:
    runs = await run_in_threadpool(views.drill_runs, drills_folder(request))
    return render(request, "drills.html", {"runs": runs, "dur": _dur}, ident=ident)


@router.get("/drills/view/{relative:path}")
async def drill_report(relative: str, request: Request, ident: DrillViewer) -> Response:
    """One drill report (Markdown) shown as a page, with its downloads."""
    path = await _drill_path(request, ident, relative)
    if path.suffix != ".md":
        exc = InputError("only Markdown reports are shown as a page", field="path")
        return refused(request, exc, ident, "/drills")
    text = await run_in_threadpool(path.read_text, "utf-8")
    stem = relative.rsplit(".", 1)[0]
    pdf = f"{stem}.pdf" if path.with_suffix(".pdf").is_file() else None
    return render(request, "report.html", {"html": markdown_html(text), "title": path.name, "back": "/drills",
                                           "downloads": [("md", f"/drills/files/{relative}")]
                                           + ([("pdf", f"/drills/files/{pdf}")] if pdf else [])}, ident=ident)


@router.get("/drills/files/{relative:path}")
async def drill_download(relative: str, request: Request, ident: DrillViewer) -> Response:
    path = await _drill_path(request, ident, relative)
    fmt = path.suffix.lstrip(".")
    return FileResponse(path, media_type=MEDIA[fmt], filename=relative.replace("/", "_"),
                        content_disposition_type="inline" if fmt == "pdf" else "attachment")


INCIDENT_KINDS = ("incident_report", "after_action")


def _incident_markdown(request: Request, incident_id: int, kind: str, lang: str) -> tuple[str, dict[str, Any]]:
    """The report `crisis report` prints (same context, templates and zone), and its context for the PDF."""
    from crisis import reports

    if kind not in INCIDENT_KINDS:
        raise InputError(f"unknown report {kind!r} (use {', '.join(INCIDENT_KINDS)})", field="kind")
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r} (use {', '.join(LANGS)})", field="lang")
    ctx = reports.report_context(request.app.state.svc, incident_id, tz=request.app.state.tz)
    return reports.render(kind, ctx, lang), ctx


@router.get("/incidents/{incident_id}/report")
async def incident_report(incident_id: int, request: Request, rlang: str = "zh-CN",
                          kind: str = "incident_report", *, ident: Reader) -> Response:
    """The report as HTML: a fragment for the incident page's inline preview (htmx), a page otherwise.
    `rlang` is the report's language, independent of the page's own (`lang`)."""
    back = f"/incidents/{incident_id}"
    try:
        text, _ctx = await run_in_threadpool(_incident_markdown, request, incident_id, kind, rlang)
    except CrisisError as exc:
        return refused(request, exc, ident, back)
    links = [(fmt, f"/incidents/{incident_id}/report/{kind}.{rlang}.{fmt}") for fmt in ("md", "pdf")]
    name = "report_fragment.html" if request.headers.get("hx-request") else "report.html"
    return render(request, name, {"html": markdown_html(text), "title": f"#{incident_id}", "back": back,
                                  "downloads": links}, ident=ident)


@router.get("/incidents/{incident_id}/report/{kind}.{rlang}.{fmt}")
async def incident_report_download(incident_id: int, kind: str, rlang: str, fmt: str, request: Request,
                                   ident: Reader) -> Response:
    """The report as a file: Markdown, or the PDF laid out from the same Markdown."""
    try:
        if fmt not in ("md", "pdf"):
            raise InputError(f"unknown format {fmt!r} (use md, pdf)", field="format")
        text, ctx = await run_in_threadpool(_incident_markdown, request, incident_id, kind, rlang)
        if fmt == "pdf":
            from crisis.report_pdf import render_pdf

            body: bytes = await run_in_threadpool(lambda: render_pdf(text, kind=kind, ctx=ctx, lang=rlang))
        else:
            body = text.encode("utf-8")
    except CrisisError as exc:
        return refused(request, exc, ident, f"/incidents/{incident_id}")
    filename = f"incident-{incident_id}-{kind}.{rlang}.{fmt}"
    return Response(body, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _dur(seconds: Any) -> str:
    return format_duration(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else "-"

