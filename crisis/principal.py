"""Who acts: a person of the roster, the roles the roster gives them, and how they proved it.

Every adapter (CLI, HTTP, web, drill) builds a `Principal` and hands it to a service command. The
service never trusts the roles a caller puts in: it re-derives them from the roster it was built
with (`for_person`), so a forged role changes nothing. The built-in actors of the engine itself —
the scheduler's tick and the drill facilitator's injects — are not principals at all: they run
through the service's internal paths and cannot be named by a caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from crisis.errors import InputError
from crisis.roster import GROUPS, Roster

AuthMethod = Literal["cli", "session", "token", "hmac", "acklink", "drill"]
AUTH_METHODS: tuple[str, ...] = get_args(AuthMethod)
# Names the engine records for its own actions; no roster person may carry them (see Roster checks).
ENGINE_ACTORS = ("system", "drill")


@dataclass(frozen=True)
class Principal:
    """A roster person acting through an adapter. `roles` is informational for adapters; the
    service recomputes it from the roster before deciding anything."""

    person: str
    auth: AuthMethod = "cli"
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.auth not in AUTH_METHODS:
            raise InputError(f"unknown authentication method {self.auth!r} (use {', '.join(AUTH_METHODS)})",
                             field="auth")
        if not isinstance(self.person, str) or not self.person:
            raise InputError("a principal needs a person id", field="person")

    def has(self, role: str) -> bool:
        return role in self.roles


def roles_of(roster: Roster, person: str, now: datetime | None = None) -> frozenset[str]:
    """The roles a person holds, in one vocabulary the policy rules read:
    `group:<g>` (member of a group), `head:<g>` (its head), `leadership`, `leadership_head`,
    `role:<name>` (named role; `role:info_dept_head` falls back to the monitoring head),
    `on_call` (listed on the on-call rotation; `on_call_now` when their window covers `now`)."""
    return roles_at(standing_roles(roster, person), roster, person, now)


def standing_roles(roster: Roster, person: str) -> frozenset[str]:
    """The roles a person holds whatever the time (all of `roles_of` but `on_call_now`): a service computes
    them once per person."""
    roles: set[str] = set()
    for g in GROUPS:
        grp = roster.groups[g]
        if person in grp.everyone:
            roles.add(f"group:{g}")
        if person == grp.head:
            roles.add(f"head:{g}")
    if "group:leadership" in roles:
        roles.add("leadership")
    if person == roster.leadership_head():
        roles.add("leadership_head")
    roles.update(f"role:{name}" for name, pid in roster.roles.items() if pid == person)
    if "info_dept_head" not in roster.roles and person == roster.group_head("monitoring"):
        roles.add("role:info_dept_head")
    if person in roster.on_call_people():  # the rota's people too
        roles.add("on_call")
    return frozenset(roles)


def roles_at(standing: frozenset[str], roster: Roster, person: str, now: datetime | None) -> frozenset[str]:
    """The standing roles, with `on_call_now` when the person's on-call window covers `now`."""
    if now is not None and "on_call" in standing and roster.on_call_at(now) == person:
        return standing | {"on_call_now"}
    return standing


def for_person(roster: Roster, person: str, auth: AuthMethod = "cli", now: datetime | None = None) -> Principal:
    """A principal with its roles filled from the roster; the person must be on it."""
    return Principal(person=person, auth=auth, roles=roles_of(roster, person, now))
