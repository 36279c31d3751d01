"""JSON endpoints for every CLI command and read model, under /api/v1.

Each handler translates: a request body becomes a service call with the caller's identity, the result a
JSON document (times in UTC ISO 8601 with Z). Who may do what is the service's decision; a refusal comes
back as a typed error the error handlers turn into the one error shape. Handlers are plain `def`s, so
FastAPI runs them in its thread pool and a database wait never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from crisis import jsonout, views
from crisis.engine.fsm import TRIGGERS
from crisis.errors import InputError
from crisis.http.auth import Identity, require
from crisis.principal import Principal
from crisis.service import CrisisService
from crisis.service.statements import statement_warnings
from crisis.store.records import as_dict

Reader = Annotated[Identity, Depends(require("read"))]
Writer = Annotated[Identity, Depends(require("write"))]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]


def encode(value: Any) -> Any:
    """Rows, dicts and lists to JSON-ready data (datetimes as UTC ISO 8601 with Z, as pydantic writes them)."""
    return jsonout.encode(value)


def paged(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """One page of a list, with where the next one starts (None at the end)."""
    nxt = offset + limit if offset + limit < total else None
    return {"items": encode(items), "total": total, "limit": limit, "offset": offset, "next_offset": nxt}


def service(request: Request) -> CrisisService:
    svc: CrisisService = request.app.state.svc
    return svc


def by(ident: Identity) -> dict[str, Any]:
    """The caller as a service command's principal (the service re-derives the roles from its roster)."""
    return {"principal": Principal(person=ident.person, auth=ident.auth)}  # type: ignore[arg-type]


def deliver(request: Request) -> None:
    """Deliver what the command queued (channels are idempotent; the scheduler retries failures)."""
    request.app.state.deliver()


Signals = dict[str, float]


class OpenBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    source_url: str | None = Field(default=None, max_length=2000)
    signals: Signals = Field(default_factory=dict)
    severity: str | None = Field(default=None, description="Grade I–IV (default: the playbook's).")


class FireBody(BaseModel):
    trigger: Literal[TRIGGERS]  # type: ignore[valid-type]
    decision: Literal["activate", "watch", "dismiss"] | None = None
    severity: str | None = None
    override: bool = False
    reason: str | None = Field(default=None, max_length=2000)
    note: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(default=None, description="The incident version you saw (409 if stale).")


class SignalsBody(BaseModel):
    signals: Signals
    note: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = None


class RegradeBody(BaseModel):
    severity: str = Field(min_length=1, max_length=8, description="New grade I–IV.")
    reason: str = Field(min_length=1, max_length=2000)
    expected_version: int | None = None


class ApplicableBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class DoneBody(BaseModel):
    note: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = None


class DraftBody(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20000)
    next_update: str | None = Field(default=None, max_length=200)
    major: bool | None = None
    expected_version: int | None = None


class ReviewBody(BaseModel):
    approve: bool
    comment: str | None = Field(default=None, max_length=2000)
    level: int | None = Field(default=None, ge=1, le=3, description="The review level you saw (409 if another "
                                                                    "reviewer took it meanwhile).")


class ReleaseBody(BaseModel):
    override: bool = False  # leadership: release despite a personal-data finding
    reason: str | None = Field(default=None, max_length=1000)


router = APIRouter()


# ---------------------------------------------------------------------------- incidents
@router.get("/incidents", tags=["incidents"])
def list_incidents(request: Request, _: Reader, limit: Limit = 50, offset: Offset = 0,
                   include_final: bool = False, final: bool | None = None, stage: str | None = None,
                   category: str | None = None) -> dict[str, Any]:
    """Incidents newest first with their next deadline and overdue / unacknowledged counts; open ones unless
    `include_final` (both) or `final` (true: only closed and dismissed; false: only open); by stage, category."""
    which = final if final is not None else (None if include_final else False)
    pg = views.incident_list(service(request), stage=stage, category=category, final=which, limit=limit,
                             offset=offset)
    rows = [{**as_dict(r.incident), "next_deadline": r.next_deadline, "overdue": r.overdue,
             "unacked": r.unacked} for r in pg.items]
    return paged(rows, pg.total, limit, offset)


@router.post("/incidents", status_code=201, tags=["incidents"])
def open_incident(body: OpenBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Open an incident: it starts in monitoring with the playbook's first tasks."""
    svc = service(request)
    known = svc.playbooks.categories
    if body.category not in known:
        raise InputError(f"unknown category '{body.category}' (known: {', '.join(known)})", field="category")
    inc = svc.open_incident(title=body.title, category=body.category, source_url=body.source_url,
                            signals=body.signals, severity=body.severity, **by(ident))
    deliver(request)
    return encode({"incident": inc, "tasks": svc.tasks(inc.id or 0)})


@router.get("/incidents/{incident_id}", tags=["incidents"])
def show_incident(incident_id: int, request: Request, _: Reader) -> dict[str, Any]:
    """One incident as one snapshot: stage, allowed triggers, tasks (with overdue flags), escalations,
    statements, timeline and the version to send back with a change."""
    view = views.incident_detail(service(request), incident_id)
    overdue = {tv.task.id for tvs in view.tasks.values() for tv in tvs if tv.overdue}
    return encode({"incident": view.incident, "version": view.version, "allowed_triggers": view.allowed_triggers,
                   "tasks": [{**as_dict(t), "overdue": t.id in overdue} for t in view.all_tasks],
                   "escalations": view.escalations, "statements": view.statements, "timeline": view.timeline,
                   "at": view.at})


@router.post("/incidents/{incident_id}/fire", tags=["incidents"])
def fire(incident_id: int, body: FireBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Fire a stage trigger; 409 lists the allowed triggers when this one is not."""
    svc = service(request)
    before = svc.incident(incident_id).stage
    inc = svc.fire(incident_id, body.trigger, decision=body.decision, severity=body.severity,
                   override=body.override, reason=body.reason, note=body.note,
                   expected_version=body.expected_version, **by(ident))
    deliver(request)
    return encode({"incident": inc, "from": before, "to": inc.stage,
                   "allowed_triggers": views.allowed_triggers(inc.stage)})


@router.post("/incidents/{incident_id}/signals", tags=["incidents"])
def update_signals(incident_id: int, body: SignalsBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Record new signal values (reposts, views, …) on an incident."""
    inc = service(request).update_signals(incident_id, body.signals, note=body.note,
                                          expected_version=body.expected_version, **by(ident))
    return encode({"incident": inc})


@router.post("/incidents/{incident_id}/regrade", tags=["incidents"])
def regrade(incident_id: int, body: RegradeBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Leadership changes the grade, with a reason; open tasks get the new grade's deadlines."""
    inc = service(request).regrade(incident_id, severity=body.severity, reason=body.reason,
                                   expected_version=body.expected_version, **by(ident))
    deliver(request)
    return encode({"incident": inc})


@router.get("/incidents/{incident_id}/tasks", tags=["tasks"])
def list_tasks(incident_id: int, request: Request, _: Reader) -> dict[str, Any]:
    svc = service(request)
    svc.incident(incident_id)  # 404 for an unknown incident, not an empty list
    return {"items": encode(svc.tasks(incident_id))}


@router.get("/incidents/{incident_id}/events", tags=["incidents"])
def incident_events(incident_id: int, request: Request, _: Reader,
                    since: Annotated[int, Query(ge=0, description="Last event id seen.")] = 0) -> dict[str, Any]:
    """Timeline entries after event `since` (poll with the last id for live updates)."""
    svc = service(request)
    svc.incident(incident_id)
    events = [e for e in svc.timeline(incident_id) if (e.id or 0) > since]
    return {"items": encode(events), "last_id": max([since, *(e.id or 0 for e in events)])}


@router.get("/incidents/{incident_id}/report", tags=["reports"])
def report(incident_id: int, request: Request, _: Reader,
           kind: Literal["incident_report", "after_action", "scorecard"] = "incident_report",
           lang: Literal["zh-CN", "en"] = "zh-CN", format: Literal["markdown", "json", "pdf"] = "markdown",
           tz: str | None = None) -> Response:
    """The incident report (舆情专报), after-action review or scorecard as Markdown or PDF, or their data as
    JSON (the same keys as `crisis report --json` and scorecard.json)."""
    from crisis import reports

    svc = service(request)
    ctx = reports.report_context(svc, incident_id, tz=tz or request.app.state.tz)
    if format == "json":
        from fastapi.responses import JSONResponse

        return JSONResponse(encode(reports.document(ctx)))
    markdown = reports.render(kind, ctx, lang)
    if format == "pdf":
        from crisis.report_pdf import render_pdf

        return Response(render_pdf(markdown, kind=kind, ctx=ctx, lang=lang), media_type="application/pdf")
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")


# ---------------------------------------------------------------------------- tasks and escalations
@router.post("/tasks/{task_id}/done", tags=["tasks"])
def task_done(task_id: int, body: DoneBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Mark a task done; its pending escalations stop. A second completion is a 409."""
    task = service(request).complete_task(task_id, note=body.note, expected_version=body.expected_version,
                                          **by(ident))
    deliver(request)
    return encode({"task": task})


@router.post("/tasks/{task_id}/applicable", tags=["tasks"])
def task_applicable(task_id: int, body: ApplicableBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Mark an optional task applicable here: it then holds its stage like a required one."""
    task = service(request).mark_applicable(task_id, reason=body.reason, **by(ident))
    deliver(request)
    return encode({"task": task})


@router.post("/escalations/{escalation_id}/ack", tags=["escalations"])
def ack(escalation_id: int, request: Request, ident: Writer) -> dict[str, Any]:
    """Acknowledge an escalation: holds the chain for that task (the task itself stays open)."""
    esc = service(request).acknowledge(escalation_id=escalation_id, **by(ident))
    deliver(request)
    return encode({"escalation": esc})


@router.get("/escalations", tags=["escalations"])
def list_escalations(request: Request, _: Reader, limit: Limit = 50, offset: Offset = 0, pending: bool = False,
                     incident: int | None = None) -> dict[str, Any]:
    """Escalations fired, newest first; `pending`: those of open tasks (acknowledged ones stay listed: an
    acknowledgement only holds the chain), most overdue first."""
    pg = service(request).escalation_page(incident, pending=pending, limit=limit, offset=offset)
    return paged(pg.items, pg.total, limit, offset)


@router.post("/tick", tags=["escalations"])
def tick(request: Request, _: Writer) -> dict[str, Any]:
    """Fire what is due now and deliver (what the scheduler does every cycle; idempotent)."""
    svc = service(request)
    fired = svc.tick()
    deliver(request)
    return encode({"fired": fired, "next_due": svc.next_due()})


@router.get("/events", tags=["incidents"])
def events_since(request: Request, _: Reader, since: Annotated[int, Query(ge=0)] = 0,
                 limit: Limit = 200) -> dict[str, Any]:
    """Audit events of all incidents after event `since` (poll with `last_id` for live updates)."""
    events = views.events_since(service(request), since, limit=limit)
    return {"items": encode(events), "last_id": max([since, *(e.id or 0 for e in events)])}


@router.get("/me/work", tags=["tasks"])
def my_work(request: Request, ident: Reader) -> dict[str, Any]:
    """The caller's open tasks and the escalations that paged them for open tasks, newest first."""
    work = views.my_work(service(request), ident.person)
    return encode({"person": work.person, "tasks": work.tasks, "escalations": work.escalations, "at": work.at})


# ---------------------------------------------------------------------------- statements
@router.post("/incidents/{incident_id}/statements", status_code=201, tags=["statements"])
def draft_statement(incident_id: int, body: DraftBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Draft a public statement; it enters review (three levels when major)."""
    st = service(request).draft_statement(incident_id, title=body.title, body=body.body, major=body.major,
                                          next_update=body.next_update, expected_version=body.expected_version,
                                          **by(ident))
    return encode({"statement": st, "warnings": statement_warnings(st)})


@router.post("/statements/{statement_id}/review", tags=["statements"])
def review_statement(statement_id: int, body: ReviewBody, request: Request, ident: Writer) -> dict[str, Any]:
    """Review at the next level (information staff → information head → leadership)."""
    st = service(request).review_statement(statement_id, approve=body.approve, comment=body.comment,
                                           expected_level=body.level, **by(ident))
    return encode({"statement": st, "warnings": statement_warnings(st)})


@router.post("/statements/{statement_id}/release", tags=["statements"])
def release_statement(statement_id: int, request: Request, ident: Writer,
                      body: ReleaseBody | None = None) -> dict[str, Any]:
    """Release an approved statement; one with personal data only by leadership with override and reason."""
    body = body or ReleaseBody()
    st = service(request).release_statement(statement_id, override=body.override, reason=body.reason, **by(ident))
    return encode({"statement": st, "warnings": statement_warnings(st)})


# ---------------------------------------------------------------------------- playbooks
@router.get("/playbooks", tags=["playbooks"])
def list_playbooks(request: Request, _: Reader) -> dict[str, Any]:
    return {"categories": service(request).playbooks.categories}


@router.get("/playbooks/{category}", tags=["playbooks"])
def playbook_outline(category: str, request: Request, _: Reader, severity: str = "II") -> dict[str, Any]:
    """Stages, tasks, deadlines and escalation chains of a playbook for one grade."""
    from crisis.severity import Severity

    pb = service(request).playbooks.get(category)
    try:
        sev = Severity.parse(severity)
    except ValueError as exc:
        raise InputError(str(exc), field="severity") from None
    return views.outline_json(views.playbook_outline(pb, sev))
