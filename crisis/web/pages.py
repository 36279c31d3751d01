"""Rendering helpers shared by the page routes: the template environment, the per-request context
(language, zone, who is signed in) and the error page. Adapters translate; they decide nothing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from crisis import labels
from crisis.engine import policy
from crisis.http.auth import Identity, authenticate, check_csrf
from crisis.http.errors import ApiError
from crisis.principal import for_person
from crisis.web.i18n import LANG_COOKIE, gettext_for, pick_lang

TEMPLATES = Jinja2Templates(directory=str(resources.files("crisis.web") / "templates"))  # autoescape on .html
GRADE_CLASS = {"I": "g1", "II": "g2", "III": "g3", "IV": "g4"}


def now_of(request: Request) -> datetime:
    return request.app.state.svc.clock.now()


def local(value: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time in the hospital's zone (CRISIS_TZ)."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).strftime(fmt)


def since(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    minutes = int((now - value).total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def category_names(playbooks: Any) -> dict[str, tuple[str, str]]:
    """category → (zh, en) playbook names, for `labels.category` (a page never shows the raw key)."""
    return {pb.category: (pb.name.zh, pb.name.en) for pb in playbooks}


def person_name(roster: Any, pid: str | None, lang: str) -> str:
    """A person's name; the engine's own actors ("system", "drill") by their label."""
    if pid in labels.ACTORS:
        return labels.label("actor", pid, lang)
    return str(roster.name(pid))


def pager(params: Mapping[str, str], page: int, pages: int) -> list[tuple[str, str | None]]:
    """Page links (text, href; None for the current page or a gap) keeping every other query parameter:
    first, previous, up to two either side of `page`, next, last."""
    if pages <= 1:
        return []
    keep = {k: v for k, v in params.items() if k not in ("page", "lang") and v}

    def href(n: int) -> str:
        return "?" + urlencode({**keep, "page": n})

    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    links: list[tuple[str, str | None]] = [("‹", href(page - 1) if page > 1 else None)]
    last = 0
    for n in shown:
        if n > last + 1:
            links.append(("…", None))
        links.append((str(n), None if n == page else href(n)))
        last = n
    links.append(("›", href(page + 1) if page < pages else None))
    return links


def switch_lang(request: Request, lang: str) -> str:
    """The link to this same page (same page number, filters, report language) in the other language."""
    other = "zh-CN" if lang == "en" else "en"
    return "?" + urlencode({**{k: v for k, v in request.query_params.items() if k != "lang"}, "lang": other})


def render(request: Request, name: str, ctx: dict[str, Any], *, ident: Identity | None = None,
           status: int = 200) -> HTMLResponse:
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    tz = ZoneInfo(request.app.state.tz)
    now = now_of(request)
    svc = request.app.state.svc
    categories = category_names(svc.playbooks)
    base = {"request": request, "_": gettext_for(lang), "lang": lang, "now": now, "ident": ident,
            "csrf": ident.csrf_token if ident else "", "name": lambda pid: person_name(svc.roster, pid, lang),
            "grade": GRADE_CLASS, "catname": lambda key: labels.category(key, lang, categories),
            "label": lambda kind, key: labels.label(kind, key, lang),
            "finding": lambda f: labels.finding(f.code, f.facts, lang), "pick": lambda t: labels.pick(t, lang),
            "local": lambda v, fmt="%Y-%m-%d %H:%M": local(v, tz, fmt), "since": lambda v: since(v, now),
            "iso": iso, "tzname": request.app.state.tz, "switch": switch_lang(request, lang),
            "nav_drills": bool(ident) and policy.may_view_drills(
                for_person(svc.roster, ident.person, "session", now)).allowed}
    res = TEMPLATES.TemplateResponse(request, name, {**base, **ctx}, status_code=status)
    if request.query_params.get("lang") in ("zh-CN", "en"):
        res.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return res


def problem(request: Request, title: str, detail: str, status: int, ident: Identity | None = None,
            back: str | None = None, back_label: str = "Reload") -> HTMLResponse:
    """One clear page for every refusal (stale page, not allowed, bad link); nothing was changed. `back`: where
    its button goes, `back_label` its words (a gettext msgid)."""
    return render(request, "problem.html", {"title": title, "detail": detail, "back": back,
                                            "back_label": back_label}, ident=ident, status=status)


class PageRefused(Exception):
    """What to send instead of the page (the login redirect, a problem page, a bare 401 for a live fragment).
    Raised by the sign-in dependencies below or by a handler; `crisis.web.install` sends its response as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _identity(request: Request, *, write: bool) -> Identity:
    """The session's identity (a write also checks the CSRF token). Signed out: the login page, except for an
    htmx fragment (the board's live part, a report preview), whose slot must not fill with the login page."""
    try:
        ident = await authenticate(request)
        if ident is None:
            if request.headers.get("hx-request"):
                raise PageRefused(Response(status_code=401))
            raise PageRefused(RedirectResponse(f"/login?next={request.url.path}", status_code=303))
        if write:
            await check_csrf(request, ident)
    except ApiError as exc:
        raise PageRefused(problem(request, "Not allowed", exc.message, exc.status)) from None
    return ident


async def reader(request: Request) -> Identity:
    return await _identity(request, write=False)


async def writer(request: Request) -> Identity:
    return await _identity(request, write=True)


Reader = Annotated[Identity, Depends(reader)]  # a page: whoever is signed in
Writer = Annotated[Identity, Depends(writer)]  # an action: signed in, with the session's CSRF token

