"""One-tap acknowledgement: `/ack/{token}` from a notification. The link is signed for one escalation and
one person (crisis.acklink), expires after 24 h or when the task is no longer open, and works once (an
escalation already acknowledged refuses it). Opening it shows what is asked; only the POST acknowledges,
acting as that person with auth "acklink" — no password for that single action."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from crisis import acklink, views
from crisis.errors import CrisisError, Forbidden
from crisis.principal import Principal
from crisis.web.pages import now_of, problem, render

router = APIRouter(include_in_schema=False)


def _check(request: Request, token: str) -> tuple[acklink.AckClaim, tuple]:  # type: ignore[type-arg]
    """The claim and what it points at, or Forbidden (bad, expired, used, other person's, task done)."""
    secret: bytes | None = request.app.state.ack_secret
    if not secret:
        raise Forbidden("acknowledgement links are not configured on this server (CRISIS_ACK_SECRET)")
    claim = acklink.verify(secret, token, now_of(request))
    d = views.escalation_detail(request.app.state.svc, claim.escalation)
    esc, task, inc, chain = d.escalation, d.task, d.incident, d.chain
    if esc.recipient != claim.person:
        raise Forbidden("this link was not issued to the person it names")
    if esc.acked_at is not None:
        raise Forbidden("this link has already been used: the escalation is acknowledged")
    if task.status != "open":
        raise Forbidden("this link has expired: the task is no longer open")
    return claim, (esc, task, inc, chain)


@router.get("/ack/{token}")
async def ack_page(token: str, request: Request) -> Response:
    try:
        claim, (esc, task, inc, chain) = await run_in_threadpool(_check, request, token)
    except CrisisError as exc:
        return problem(request, "This acknowledgement link cannot be used", str(exc), 403)
    return render(request, "ack.html", {"claim": claim, "esc": esc, "task": task, "inc": inc, "chain": chain,
                                        "token": token})


@router.post("/ack/{token}")
async def ack_post(token: str, request: Request) -> Response:
    svc = request.app.state.svc

    def run() -> None:
        claim, (esc, *_rest) = _check(request, token)
        svc.acknowledge(escalation_id=esc.id, principal=Principal(person=claim.person, auth="acklink"))

    try:
        await run_in_threadpool(run)
    except CrisisError as exc:
        return problem(request, "This acknowledgement link cannot be used", str(exc), 403)
    request.app.state.deliver()
    return render(request, "ack_done.html", {})
