"""Error types the shell turns into clear messages; raising one must leave state unchanged.

Also the one place that says what a typed error means to a caller: its HTTP status, its `code`, and the
body `{"error": {"code", "message", "field", ...}}` that the API answers and the CLI prints under --json.
Adapters map by type through `status_of` / `error_body`, never by reading a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class CrisisError(Exception):
    """Base for errors shown to users (CLI exit code 2, HTTP 4xx)."""


class InputError(CrisisError):
    """Bad input file or argument, located by file, field and line where known. The refusals a form meets
    (an empty field, one too long, a missing reason) also carry a `kind` and its `facts`, so a page can word
    them in its own language (crisis.labels.input_error)."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None, kind: str | None = None, facts: dict[str, Any] | None = None) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.line = line
        self.kind, self.facts = kind, facts or {}
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class Conflict(CrisisError):
    """The request clashes with the current state: an illegal trigger, a task already done, a statement
    not in review, or a version the caller saw that has since changed (HTTP 409)."""


@dataclass(frozen=True)
class Change:
    """One audit event that changed an incident's version: what a stale caller missed, as data (the API words it
    in English, `text`; a page words it in its own language)."""

    kind: str
    actor: str
    at: datetime
    from_state: str | None = None
    to_state: str | None = None

    def text(self) -> str:
        at = self.at.isoformat().replace("+00:00", "Z")
        return f"{self.kind} by {self.actor} at {at}" + (f" ({self.from_state} → {self.to_state})"
                                                          if self.to_state else "")


class StaleVersion(Conflict):
    """The incident changed since the caller read it: `events` are the audit events since then (`changes`, the
    same in words)."""

    def __init__(self, incident_id: int, expected: int, actual: int, events: list[Change]) -> None:
        self.incident_id, self.expected, self.actual, self.events = incident_id, expected, actual, events
        self.changes = [c.text() for c in events]
        what = "; ".join(self.changes) if events else "unknown change"
        super().__init__(f"incident #{incident_id} changed since version {expected} (now {actual}): {what}")


class IllegalTrigger(Conflict):
    """A stage trigger that the incident's current stage does not allow."""

    def __init__(self, trigger: str, stage: str, allowed: list[str]) -> None:
        self.trigger, self.stage, self.allowed = trigger, stage, allowed
        allowed_s = ", ".join(allowed) if allowed else "none (final stage)"
        super().__init__(f"trigger '{trigger}' is not allowed from stage '{stage}'; allowed: {allowed_s}")


class GuardFailed(Conflict):
    """Leaving a stage with required tasks still open, without a leadership override: `stage`, the open
    required tasks' keys (`tasks`) and the incident's `category` (whose playbook titles them), where known."""

    def __init__(self, stage: str, tasks: list[str], category: str | None = None) -> None:
        self.stage, self.tasks, self.category = stage, tasks, category
        super().__init__(f"cannot leave stage '{stage}': required task(s) still open: {', '.join(tasks)}; "
                         "complete them first, or leadership may override with a reason")


class NotFound(CrisisError):
    """An incident, task or person that does not exist. A record looked up by its number says which kind it is
    (`what`: incident, task, escalation, statement; drill_report, by its path) and the number or path (`ref`): a
    page words them in its own language (crisis.labels.not_found); by default the message is "no incident #9"."""

    def __init__(self, message: str | None = None, *, what: str | None = None, ref: object = None) -> None:
        self.what, self.ref = what, ref
        super().__init__(message if message is not None else f"no {what} #{ref}")


class Forbidden(CrisisError):
    """The principal may not do this (an override by someone outside leadership, an unknown person);
    `rule` names the policy rule that refused it."""

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        self.rule = rule
        super().__init__(message)


class Unavailable(CrisisError):
    """The database cannot be used: unreachable, not a database, read-only, full (HTTP 503). Nothing changed."""


class Busy(Unavailable):
    """Another process held the database's write lock for longer than a command waits (HTTP 503, retry)."""

    retry_after = 1  # seconds; the API's Retry-After header, `retry_after` in every error body


class DatabaseMissing(Unavailable):
    """No crisis database where the settings point (a missing SQLite file, or no crisis tables): only
    `crisis db init` creates one, so a wrong URL is an error, never a fresh empty database (HTTP 503)."""


class Unauthenticated(CrisisError):
    """No credentials, or wrong ones (HTTP 401). Deliberately vague about which part was wrong."""


class TooManyAttempts(CrisisError):
    """Sign-in slowed or locked after repeated failures (HTTP 429); `retry_after` in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


EXIT_STATUS = 2  # every refusal at the shell, usage and internal errors included (scripts test for it)

# HTTP status -> the `code` of an error body; adapter-level refusals (413, 405, ...) use it too
CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
         422: "invalid", 429: "too_many_attempts", 500: "internal", 503: "unavailable"}

# most specific first; Conflict and its kinds (illegal trigger, guard, stale version, wrong state) are 409
_STATUS: tuple[tuple[type[CrisisError], int], ...] = (
    (Unauthenticated, 401), (TooManyAttempts, 429), (InputError, 422), (NotFound, 404), (Forbidden, 403),
    (Unavailable, 503), (Conflict, 409), (CrisisError, 409))

# attributes a caller can act on, carried next to code/message/field when the error has them
_DETAILS = ("allowed", "rule", "changes", "tasks", "retry_after", "file", "line")


def status_of(exc: CrisisError) -> int:
    """The HTTP status of a typed error, by class."""
    return next(status for kind, status in _STATUS if isinstance(exc, kind))


def problem(status: int, message: str, field: str | None = None, **details: Any) -> dict[str, Any]:
    """The error body for a status: `{"error": {"code", "message", "field", **details}}`."""
    return {"error": {"code": CODES.get(status, "error"), "message": message, "field": field, **details}}


def error_body(exc: CrisisError) -> dict[str, Any]:
    """The error body of a typed error: the same for the API and for the CLI's --json. An InputError's
    message is its own text; where it was (field, file, line) goes in fields of its own."""
    details = {name: value for name in _DETAILS if (value := getattr(exc, name, None)) is not None}
    message = exc.message if isinstance(exc, InputError) else str(exc)
    return problem(status_of(exc), message, getattr(exc, "field", None), **details)
