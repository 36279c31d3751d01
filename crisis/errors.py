"""Error types the shell turns into clear messages; raising one must leave state unchanged."""

from __future__ import annotations


class CrisisError(Exception):
    """Base for errors shown to users (CLI exit code 2, HTTP 4xx)."""


class InputError(CrisisError):
    """Bad input file or argument, located by file, field and line where known."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.field = field
        self.line = line
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


class StaleVersion(Conflict):
    """The incident changed since the caller read it: `changes` lists the audit events since then."""

    def __init__(self, incident_id: int, expected: int, actual: int, changes: list[str]) -> None:
        self.incident_id, self.expected, self.actual, self.changes = incident_id, expected, actual, changes
        what = "; ".join(changes) if changes else "unknown change"
        super().__init__(f"incident #{incident_id} changed since version {expected} (now {actual}): {what}")


class IllegalTrigger(Conflict):
    """A stage trigger that the incident's current stage does not allow."""

    def __init__(self, trigger: str, stage: str, allowed: list[str]) -> None:
        self.trigger, self.stage, self.allowed = trigger, stage, allowed
        allowed_s = ", ".join(allowed) if allowed else "none (final stage)"
        super().__init__(f"trigger '{trigger}' is not allowed from stage '{stage}'; allowed: {allowed_s}")


class GuardFailed(Conflict):
    """Leaving a stage with required tasks still open, without a leadership override."""


class NotFound(CrisisError):
    """An incident, task or person that does not exist."""


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


class DatabaseMissing(Unavailable):
    """No crisis database where the settings point (a missing SQLite file, or no crisis tables): only
    `crisis db init` creates one, so a wrong URL is an error, never a fresh empty database (HTTP 503)."""
