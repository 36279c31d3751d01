"""One-tap acknowledgement: `/ack/{token}` from a notification. The link is signed for one escalation and
one person (crisis.acklink), expires after 24 h or when the task is no longer open, and works once (an
escalation already acknowledged refuses it). Opening it shows what is asked; only the POST acknowledges,
acting as that person with auth "acklink" — no password for that single action.

A superseded link (later levels paged since) still acknowledges while the chain waits and says who was paged
since; once the chain is held by someone's acknowledgement it is refused (the rules: `acklink.refusal`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from crisis import acklink, labels, views
from crisis.errors import CrisisError, Forbidden, NotFound
from crisis.principal import Principal
from crisis.service.tasks import live_ack
from crisis.web.i18n import LANG_COOKIE, gettext_for, pick_lang
from crisis.web.pages import now_of, person_name, problem, render

router = APIRouter(include_in_schema=False)


class LinkRefused(Forbidden):
    """A verified link that no longer acknowledges; the message is a catalogue msgid with its fields."""

    def __init__(self, reason: acklink.Refusal) -> None:
        super().__init__(reason[0].format(**reason[1]))
        self.msgid, self.fields = reason


def _check(request: Request, token: str) -> tuple[acklink.AckClaim, views.EscalationDetail]:
    """The claim and what it points at, or Forbidden (bad, expired, used, other person's, task done, held)."""
    secret: bytes | None = request.app.state.ack_secret
    if not secret:
        raise Forbidden("acknowledgement links are not configured on this server (CRISIS_ACK_SECRET)")
    claim = acklink.verify(secret, token, now_of(request))
    d = views.escalation_detail(request.app.state.svc, claim.escalation)
    reason = acklink.refusal(claim, d.escalation, d.task, live_ack(d.task, d.chain))
    if reason is not None:
        raise LinkRefused(reason)
    return claim, d


def _refused(request: Request, exc: CrisisError) -> Response:
    """The refusal page in the reader's language (names of people as the roster gives them)."""
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    _ = gettext_for(lang)
    if isinstance(exc, LinkRefused):
        roster = request.app.state.svc.roster
        fields: dict[str, Any] = {k: person_name(roster, v, lang) if k == "who" else v for k, v in exc.fields.items()}
        detail = _(exc.msgid, **fields)
    elif isinstance(exc, NotFound) and (missing := labels.not_found(exc.what, exc.ref, lang)) is not None:
        detail = missing  # the escalation the link names is not there (another database, or a typo)
    else:
        detail = _(str(exc))
    return problem(request, "This acknowledgement link cannot be used", detail, 403)


@router.get("/ack/{token}")
async def ack_page(token: str, request: Request) -> Response:
    try:
        claim, d = await run_in_threadpool(_check, request, token)
    except CrisisError as exc:
        return _refused(request, exc)
    return render(request, "ack.html", {"claim": claim, "esc": d.escalation, "task": d.task, "inc": d.incident,
                                        "chain": d.chain, "paged_since": acklink.paged_since(d.escalation, d.chain),
                                        "token": token})


@router.post("/ack/{token}")
async def ack_post(token: str, request: Request) -> Response:
    svc = request.app.state.svc

    def run() -> None:
        claim, d = _check(request, token)
        svc.acknowledge(escalation_id=d.escalation.id, principal=Principal(person=claim.person, auth="acklink"))

    try:
        await run_in_threadpool(run)
    except CrisisError as exc:
        return _refused(request, exc)
    request.app.state.deliver()
    return render(request, "ack_done.html", {})
