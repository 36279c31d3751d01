"""The emergency team: people, the four groups with their heads, named roles, on-call rotation."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crisis.clock import ensure_aware
from crisis.errors import InputError, NotFound
from crisis.labels import GROUPS as GROUPS_ZH_EN
from crisis.rota import Rotation
from crisis.yamlsrc import load_yaml

GROUPS = ("leadership", "monitoring", "response", "logistics")
GROUP_NAMES = GROUPS_ZH_EN  # labels live in crisis.labels (one catalogue)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PERSONAL_CHANNELS = ("email", "wecom", "dingtalk", "feishu", "webhook")
QUIET = r"^(off|([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d)$"


class Person(_Strict):
    """`contacts` holds addresses and chat ids (email, phone, wecom_userid, dingtalk_userid, feishu_open_id);
    `channels` the personal channels to try, in order; `quiet_hours` "22:00-07:00", "off", or the roster's."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    title: str = ""
    contacts: dict[str, str] = Field(default_factory=dict)
    channels: list[Literal["email", "wecom", "dingtalk", "feishu", "webhook"]] = Field(default_factory=list)
    language: Literal["zh-CN", "en"] = "zh-CN"
    quiet_hours: str | None = Field(default=None, pattern=QUIET)


class Group(_Strict):
    head: str
    deputies: list[str] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)

    @property
    def everyone(self) -> list[str]:
        return [self.head, *self.deputies, *self.members]


class OnCall(_Strict):
    person: str
    start: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None

    @field_validator("start", "until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return ensure_aware(v) if v is not None else None

    def covers(self, now: datetime) -> bool:
        return (self.start is None or self.start <= now) and (self.until is None or now < self.until)


class Roster(_Strict):
    organisation: str = ""
    people: list[Person]
    groups: dict[str, Group]
    roles: dict[str, str] = Field(default_factory=dict)
    on_call: list[OnCall] = Field(min_length=1)
    rota: Rotation | None = None
    quiet_hours: str = Field(default="22:00-07:00", pattern=QUIET)  # in the hospital's zone (CRISIS_TZ)

    @model_validator(mode="after")
    def _check(self) -> Roster:
        ids = [p.id for p in self.people]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate person id(s): {', '.join(sorted(dup))}")
        missing = [g for g in GROUPS if g not in self.groups]
        unknown = [g for g in self.groups if g not in GROUPS]
        if missing or unknown:
            raise ValueError(f"groups must be exactly {', '.join(GROUPS)}"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; unknown {', '.join(unknown)}" if unknown else ""))
        reserved = {i for i in ids if i in ("system", "drill")}  # the engine's own actors
        if reserved:
            raise ValueError(f"person id(s) {', '.join(sorted(reserved))} are reserved for the engine")
        known = set(ids)
        for gname, g in self.groups.items():
            for pid in g.everyone:
                if pid not in known:
                    raise ValueError(f"group '{gname}' names unknown person '{pid}'")
        for role, pid in self.roles.items():
            if pid not in known:
                raise ValueError(f"role '{role}' names unknown person '{pid}'")
        for oc in self.on_call:
            if oc.person not in known:
                raise ValueError(f"on_call names unknown person '{oc.person}'")
        for pid in self.rota.people if self.rota else []:
            if pid not in known:
                raise ValueError(f"rota names unknown person '{pid}'")
        return self

    # --- look-ups -----------------------------------------------------------------
    @property
    def person_ids(self) -> frozenset[str]:
        return frozenset(p.id for p in self.people)

    def person(self, pid: str) -> Person:
        for p in self.people:
            if p.id == pid:
                return p
        raise NotFound(f"unknown person '{pid}' (known: {', '.join(p.id for p in self.people)})")

    def name(self, pid: str | None) -> str:
        if not pid:
            return "-"
        try:
            return self.person(pid).name
        except NotFound:
            return pid

    def group_head(self, group: str) -> str:
        return self.groups[group].head

    def leadership_head(self) -> str:
        return self.groups["leadership"].head

    def is_leadership(self, pid: str) -> bool:
        return pid in self.groups["leadership"].everyone

    def on_call_at(self, now: datetime) -> str:
        """The on-call administrator whose window covers `now`; the first listed otherwise."""
        for oc in self.on_call:
            if oc.covers(now):
                return oc.person
        return self.on_call[0].person

    def on_call_people(self) -> set[str]:
        """Everyone who may stand on call (may acknowledge any escalation)."""
        return {oc.person for oc in self.on_call} | set(self.rota.people if self.rota else [])

    def on_call_windows(self) -> list[tuple[str, datetime | None, datetime | None]]:
        return [(oc.person, oc.start, oc.until) for oc in self.on_call]

    def quiet_hours_of(self, pid: str) -> str:
        try:
            own = self.person(pid).quiet_hours
        except NotFound:
            own = None
        return own or self.quiet_hours

    def known_names(self) -> dict[str, str]:
        """Ids and display names to person ids (for imports that name people either way)."""
        return {**{p.name: p.id for p in self.people}, **{p.id: p.id for p in self.people}}

    def assignee_for(self, group: str, role: str | None) -> str:
        """The person a task goes to: the named role if the roster has it, else the group head."""
        if role and role in self.roles:
            return self.roles[role]
        return self.group_head(group)

    def resolve(self, target: str, *, group: str, assignee: str, now: datetime) -> str:
        """Turn an escalation target (assignee, group_head, leadership_head, on_call, role:X, person:X)."""
        return self.fixed_recipient(target, group=group, assignee=assignee) or self.on_call_at(now)

    def fixed_recipient(self, target: str, *, group: str, assignee: str) -> str | None:
        """The person a target always means; None for on_call, whose person depends on the time."""
        if target == "assignee":
            return assignee
        if target == "group_head":
            return self.group_head(group)
        if target == "leadership_head":
            return self.leadership_head()
        if target == "on_call":
            return None
        if target.startswith("role:"):
            return self.roles.get(target[5:], self.group_head(group))
        if target.startswith("person:"):
            return target[7:]
        raise ValueError(f"unknown escalation target {target!r}")


def load_roster(path: str | Path, cache: Path | None = None) -> Roster:
    """The roster file (`cache`: crisis.yamlsrc's parse cache folder)."""
    doc = load_yaml(path, cache)
    if not isinstance(doc.data, dict):
        raise InputError("a roster must be a mapping", file=str(path), line=1)
    return doc.validate(Roster)
