"""The page for an action or read the service refused, in the page's language.

The service's errors carry their facts: the stage and open required tasks of a blocked transition, the events a
stale page missed, the trigger a stage does not allow, the rule that refused, what was wrong with a form's
field, the kind and number of a record that is not there. A page words those facts with the same labels as
everywhere else (stages, event kinds, names, task titles, rules, fields), so a Chinese page does not show an
engine message in English; an error without such facts (input no form sends) shows its own message. The
headline says what kind of refusal it is: a transition blocked by open tasks is not "someone changed this".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse

from crisis import labels
from crisis.errors import CrisisError, Forbidden, GuardFailed, IllegalTrigger, InputError, NotFound, StaleVersion
from crisis.http.auth import Identity
from crisis.http.errors import crisis_status
from crisis.playbook import PlaybookSet
from crisis.web.i18n import LANG_COOKIE, gettext_for, pick_lang
from crisis.web.pages import local, person_name, problem

# The headline per HTTP status (a gettext msgid); the detail under it says what exactly.
HEADLINES = {403: "Not allowed", 404: "Not found", 409: "Someone changed this — reload the page",
             422: "Check what you entered"}
NOT_NOW = "Not possible at this stage"  # a transition the stage does not allow, or blocked by its open tasks


def refused(request: Request, exc: CrisisError, ident: Identity | None, back: str | None) -> HTMLResponse:
    """The problem page for `exc`: its headline and its detail in the page's language."""
    lang = pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    state = request.app.state
    headline, detail = explain(exc, lang, gettext_for(lang),
                               lambda pid: person_name(state.svc.roster, pid, lang),
                               lambda at: local(at, ZoneInfo(state.tz), "%m-%d %H:%M"), state.svc.playbooks)
    status = crisis_status(exc)
    if status == 404:  # reloading what is not there shows the same page again: back to the board instead
        return problem(request, headline, detail, status, ident, "/", "Back to the board")
    return problem(request, headline, detail, status, ident, back)


def explain(exc: CrisisError, lang: str, _: Callable[..., str], name: Callable[[str], str],
            when: Callable[[Any], str], playbooks: PlaybookSet) -> tuple[str, str]:
    """(headline msgid, detail) for `exc`: `_` the page's gettext, `name` a person's name, `when` a local time."""
    if isinstance(exc, StaleVersion):
        opening, closing = ("（", "）") if lang == "zh-CN" else (" (", ")")
        missed = [f"{when(c.at)} {name(c.actor)} {labels.label('event', c.kind, lang)}"
                  + (f"{opening}{labels.label('stage', c.from_state, lang)} → {labels.label('stage', c.to_state, lang)}"
                     f"{closing}" if c.to_state else "") for c in exc.events]
        if not missed:
            return HEADLINES[409], _("Reload it to see the incident as it is now.")
        return HEADLINES[409], _("Since you opened this page: {changes}.", changes=missed)
    if isinstance(exc, GuardFailed):
        titles = [task_title(playbooks, exc.category, exc.stage, key, lang) for key in exc.tasks]
        return NOT_NOW, _("The stage “{stage}” still has required tasks open: {tasks}. Complete them first, or "
                          "leadership may go on with “override open tasks” and a reason.",
                          stage=labels.label("stage", exc.stage, lang), tasks=titles)
    if isinstance(exc, IllegalTrigger):
        return NOT_NOW, _("“{trigger}” is not possible at the stage “{stage}”.",
                          trigger=labels.label("trigger", exc.trigger, lang),
                          stage=labels.label("stage", exc.stage, lang))
    if isinstance(exc, InputError) and exc.kind:
        worded = labels.input_error(exc.kind, exc.field, exc.facts, lang)
        if worded is not None:
            return HEADLINES[422], worded
    if isinstance(exc, NotFound) and (missing := labels.not_found(exc.what, exc.ref, lang)) is not None:
        return HEADLINES[404], missing
    if isinstance(exc, Forbidden) and lang != "en" and exc.rule in labels.RULES:
        return HEADLINES[403], labels.rule(exc.rule, lang)
    return HEADLINES.get(crisis_status(exc), "Not done"), str(exc)


def task_title(playbooks: PlaybookSet, category: str | None, stage: str, key: str, lang: str) -> str:
    """A task's title in the incident's playbook (its stage's task of that key); the key itself if none."""
    pb = next((pb for pb in playbooks if pb.category == category), None)
    spec = pb.task_spec(stage, key) if pb is not None else None
    if spec is None:
        return key
    return spec.title.zh if lang == "zh-CN" else spec.title.en
