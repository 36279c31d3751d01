"""The service's shared machinery: one transaction per command, audit events and outbox rows
written with it, row locks, and the principal check every command starts with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row, Table, bindparam, insert, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Engine

from crisis.clock import Clock, ensure_aware
from crisis.errors import Change, Forbidden, NotFound, StaleVersion
from crisis.logs import get_logger, info_lines
from crisis.notify.outbox import DEFAULT_CHANNELS, Routing, messages
from crisis.playbook import PlaybookSet
from crisis.principal import ENGINE_ACTORS, Principal, roles_at, standing_roles
from crisis.roster import Roster
from crisis.rota import OnCall, Shift, on_call, with_backup
from crisis.store import records
from crisis.store.db import read_session, write_session
from crisis.store.prepared import Prepared, write
from crisis.store.tables import EVENT as EVT
from crisis.store.tables import INCIDENT as INC
from crisis.store.tables import ONCALLSHIFT as _SHIFT
from crisis.store.tables import OUTBOXMESSAGE as OUTBOX
from crisis.store.tables import TASK

if TYPE_CHECKING:  # the ORM and the models load only in the commands that use them (not the Core hot paths)
    from sqlmodel import Session

    from crisis.store.models import Incident, Task

SYSTEM = "system"  # the engine's own actions (escalations, regrading): never a caller's principal
DRILL = "drill"  # the drill facilitator's injects, recorded by the drill runner's own path
R = TypeVar("R")


def insert_of(table: Table, columns: tuple[str, ...]) -> Prepared:
    """An INSERT of these columns, each bound by its own name (rows are dicts with exactly these keys)."""
    return Prepared(insert(table).values({k: bindparam(k, type_=table.c[k].type) for k in columns}))


# Hot-path statements, built once with bound parameters and compiled once per dialect (crisis.store.prepared):
# building a statement costs more than running it, and so does SQLAlchemy's per-execute path.
EVENT_COLUMNS = ("incident_id", "at", "actor", "kind", "auth", "from_state", "to_state", "task_id", "data")
OUTBOX_COLUMNS = ("dedupe_key", "channel", "kind", "recipient", "urgent", "incident_id", "subject", "body", "payload",
                  "created_at", "next_attempt_at", "held_until", "attempts")
_INSERT_EVENTS = insert_of(EVT, EVENT_COLUMNS)
_INSERT_OUTBOX = insert_of(OUTBOX, OUTBOX_COLUMNS)
_INCIDENT = Prepared(sa_select(INC).where(INC.c.id == bindparam("b_id")))
_INCIDENT_LOCKED = Prepared(sa_select(INC).where(INC.c.id == bindparam("b_id")).with_for_update())
# a task's incident, row-locked: the task is then read under that lock
_TASK_INCIDENT_LOCKED = Prepared(sa_select(INC).where(
    INC.c.id == sa_select(TASK.c.incident_id).where(TASK.c.id == bindparam("b_id")).scalar_subquery())
    .with_for_update())
_TASK = Prepared(sa_select(TASK).where(TASK.c.id == bindparam("b_id")))
# on SQLite, where the command holds the write lock from its BEGIN, the task and its incident in one read
_TASK_AND_INCIDENT = Prepared(sa_select(TASK, INC).select_from(TASK.join(INC, INC.c.id == TASK.c.incident_id))
                              .where(TASK.c.id == bindparam("b_id")))
_TASK_COLUMNS = tuple(c.key for c in TASK.columns)
_INC_COLUMNS = tuple(c.key for c in INC.columns)
# the latest version-changing events of an incident (the kinds spelt out: IN (…) would expand)
_CHANGES = Prepared(sa_select(EVT.c.kind, EVT.c.actor, EVT.c.at, EVT.c.from_state, EVT.c.to_state).where(
    EVT.c.incident_id == bindparam("b_id"), or_(*(EVT.c.kind == k for k in ("stage_changed", "signals_updated",
                                                                           "severity_changed"))))
    .order_by(EVT.c.id.desc()).limit(bindparam("b_n")))
# find_task's order: the current cycle's task, the latest if its stage was re-entered
_TASK_ID = Prepared(sa_select(TASK.c.id).where(TASK.c.incident_id == bindparam("b_inc"),
                                               TASK.c.key == bindparam("b_key"))
                    .order_by(TASK.c.cycle.desc(), TASK.c.id.desc()).limit(1))


_SHIFTS_AT = Prepared(sa_select(_SHIFT.c.person, _SHIFT.c.start, _SHIFT.c.until, _SHIFT.c.source)
                      .where(_SHIFT.c.start <= bindparam("b_now", type_=_SHIFT.c.start.type),
                             _SHIFT.c.until > bindparam("b_now", type_=_SHIFT.c.until.type)).order_by(_SHIFT.c.id))


def recs(stmt: Prepared, conn: Connection, params: dict[str, Any] | None = None) -> list[Rec]:
    """A prepared read's rows as records."""
    names = stmt.names(conn)
    return [Rec(**dict(zip(names, row, strict=True))) for row in stmt.rows(conn, params)]


class Rec(SimpleNamespace):
    """A row read by a hot-path command with a Core statement: attribute access like the models and mutable,
    without validation, ORM state, identity map or autoflush. The command turns it into a record
    (crisis.store.records) only once, for its return value (`as_record`)."""

    cycle_anchor = records.Incident.cycle_anchor  # the record's own rule, for incident rows (one place)

    def as_record(self, cls: type[R]) -> R:
        """The row as a `cls` record (the read side's dataclasses: the same fields in column order, so adapters
        and JSON see the same values): no model class, no mapper configuration on a write command's path."""
        values = vars(self)
        return cls(**{k: values[k] for k in _field_names(cls) if k in values})


def _connection(s: Session | Connection) -> Connection:
    """The connection under a Session, or the connection itself (a Connection, or crisis.store.prepared.write's
    SQLite transaction): a Session's `connection` is a method, a connection's is its pooled DBAPI connection."""
    return s.connection() if callable(getattr(s, "connection", None)) else s  # type: ignore[return-value]


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A record class's field names (dataclasses.fields walks the class every call)."""
    return tuple(f.name for f in fields(cls))


@dataclass
class _Tx:
    """What one command writes besides the ORM rows: audit events and outbox messages, inserted in
    bulk just before commit (one statement each instead of an ORM flush per row)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    auth: str | None = None  # how the command's principal authenticated, recorded on each of its events

    def flush(self, conn: Connection) -> None:
        """One executemany each (the ORM bulk path costs more)."""
        _INSERT_EVENTS.many(conn, self.events)
        _INSERT_OUTBOX.many(conn, self.outbox)


class ServiceBase:
    """State and helpers every command group uses; `CrisisService` combines the groups."""

    def __init__(self, engine: Engine, playbooks: PlaybookSet, roster: Roster, clock: Clock, *,
                 channels: tuple[str, ...] = DEFAULT_CHANNELS, routing: Routing | None = None) -> None:
        self.engine, self.playbooks, self.roster, self.clock = engine, playbooks, roster, clock
        self.routing = routing or Routing(channels=channels)
        self.channels = self.routing.channels
        self.log = get_logger()
        # What runs after each committed command: notification delivery, set by crisis.bootstrap (or by
        # `crisis serve`: wake the in-process scheduler). Commands stand whatever it does.
        self.after_commit: Callable[[], None] | None = None
        self._roles: dict[str, frozenset[str] | None] = {}  # person -> standing roles (None: not on the roster)
        self._roles_of: Roster | None = None  # the roster they were read from

    # ------------------------------------------------------------------ helpers
    def _now(self, now: datetime | None) -> datetime:
        return ensure_aware(now) if now is not None else self.clock.now()

    def _principal(self, principal: Principal, now: datetime | None = None) -> Principal:
        """The caller's principal with its roles taken from the roster, never from the caller.
        An unknown person, or one naming the engine's own actors, is forbidden (not "not found")."""
        if not isinstance(principal, Principal):
            raise Forbidden(f"expected a Principal, got {type(principal).__name__}", rule="team")
        standing = None if principal.person in ENGINE_ACTORS else self._standing_roles(principal.person)
        if standing is None:
            raise Forbidden(f"unknown person '{principal.person}': only members of the roster may act", rule="team")
        return Principal(person=principal.person, auth=principal.auth,
                         roles=roles_at(standing, self.roster, principal.person, now))

    def _standing_roles(self, person: str) -> frozenset[str] | None:
        """A person's roles that do not change with time, read from the roster once per person (None: not on
        the roster); every command starts with them."""
        if self._roles_of is not self.roster:
            self._roles, self._roles_of = {}, self.roster
        if person not in self._roles:
            self._roles[person] = standing_roles(self.roster, person) if person in self.roster.person_ids else None
        return self._roles[person]

    @contextmanager
    def _write(self, principal: Principal | None = None) -> Iterator[tuple[Session, _Tx]]:
        """One command's transaction; its audit events are logged only once committed."""
        tx = _Tx(auth=principal.auth if principal is not None else None)
        with write_session(self.engine) as s:
            yield s, tx
            tx.flush(s.connection())
        self._committed(tx)

    @contextmanager
    def _core(self, principal: Principal | None = None) -> Iterator[tuple[Connection, _Tx]]:
        """The hot paths' transaction (open, fire, complete): Core statements on one connection, so a command
        costs its few statements and not an ORM unit of work (SQLite: BEGIN IMMEDIATE, see store.db)."""
        tx = _Tx(auth=principal.auth if principal is not None else None)
        with write(self.engine) as conn:
            yield conn, tx
            tx.flush(conn)
        self._committed(tx)

    def _committed(self, tx: _Tx) -> None:
        """After a command's commit: its audit log lines, then whatever runs after each command."""
        self._log_committed(tx)
        if self.after_commit is not None:
            try:
                self.after_commit()
            except Exception as exc:  # delivery never fails a committed command; the scheduler retries
                self.log.warning("after_commit_failed", error=repr(exc))

    def _log_committed(self, tx: _Tx) -> None:
        times: dict[int, str] = {}  # a command's events mostly share one time object: written out once
        lines = []
        for ev in tx.events:
            at = times.get(id(ev["at"]))
            if at is None:
                at = times[id(ev["at"])] = ev["at"].isoformat()
            lines.append((ev["kind"], {"incident": ev["incident_id"], "actor": ev["actor"], "auth": ev["auth"],
                                       "at": at, "from_state": ev["from_state"], "to_state": ev["to_state"],
                                       "task": ev["task_id"], **ev["data"]}))
        info_lines(self.log, lines)

    def _event(self, s: Session, tx: _Tx, *, at: datetime, actor: str, kind: str, incident_id: int | None,
               from_state: str | None = None, to_state: str | None = None, task_id: int | None = None,
               **data: Any) -> None:
        tx.events.append({"incident_id": incident_id, "at": at, "actor": actor, "kind": kind,
                          "auth": None if actor in ENGINE_ACTORS else tx.auth,
                          "from_state": from_state, "to_state": to_state, "task_id": task_id, "data": data})

    def _incident(self, s: Session, incident_id: int, *, lock: bool = False,
                  expected_version: int | None = None) -> Incident:
        """The incident row (locked for the command when `lock`). With `expected_version` (the version the caller
        saw), a newer one is a conflict naming what changed since: optimistic concurrency for adapters."""
        from sqlmodel import select

        from crisis.store.models import Incident

        stmt = select(Incident).where(Incident.id == incident_id)
        if lock:
            stmt = stmt.with_for_update()
        inc = s.exec(stmt).first()
        if inc is None:
            raise NotFound(what="incident", ref=incident_id)
        if expected_version is not None and inc.version != expected_version:
            raise StaleVersion(incident_id, expected_version, inc.version,
                               self._changes(s, incident_id, abs(inc.version - expected_version)))
        return inc

    def _incident_row(self, conn: Connection, incident_id: int, *, lock: bool = False,
                      expected_version: int | None = None) -> Rec:
        """`_incident` for the Core hot paths: the incident's row (locked for the command when `lock`)."""
        found = recs(_INCIDENT_LOCKED if lock else _INCIDENT, conn, {"b_id": incident_id})
        if not found:
            raise NotFound(what="incident", ref=incident_id)
        return self._checked(conn, found[0], incident_id, expected_version)

    def _checked(self, conn: Connection, row: Row[Any] | Rec, incident_id: int,
                 expected_version: int | None) -> Rec:
        """The incident row as a record, unless the caller saw another version (then StaleVersion, naming why)."""
        if expected_version is not None and row.version != expected_version:
            raise StaleVersion(incident_id, expected_version, row.version,
                               self._changes(conn, incident_id, abs(row.version - expected_version)))
        return row if isinstance(row, Rec) else Rec(**row._mapping)

    def _changes(self, s: Session | Connection, incident_id: int, n: int) -> list[Change]:
        """The latest `n` version-changing events of an incident, oldest first (what a stale caller missed)."""
        rows = recs(_CHANGES, _connection(s), {"b_id": incident_id, "b_n": max(1, n)})
        return [Change(e.kind, e.actor, e.at, e.from_state, e.to_state) for e in reversed(rows)]

    def _task_row_locked(self, conn: Connection, task_id: int,
                         expected_version: int | None = None) -> tuple[Rec, Rec]:
        """A task read under its incident's row lock: commands on one incident take turns, and each decides on
        the task as the previous one left it (PostgreSQL's READ COMMITTED would otherwise let two commands both
        see it open). The incident is found through the task and row-locked in one statement, then the task is
        read under that lock; on SQLite, whose BEGIN IMMEDIATE already holds the write lock, both in one read."""
        if conn.dialect.name == "sqlite":
            rows = _TASK_AND_INCIDENT.rows(conn, {"b_id": task_id})
            if not rows:
                raise NotFound(what="task", ref=task_id)
            n = len(_TASK_COLUMNS)
            task = Rec(**dict(zip(_TASK_COLUMNS, rows[0][:n], strict=True)))
            inc = Rec(**dict(zip(_INC_COLUMNS, rows[0][n:], strict=True)))
            return task, self._checked(conn, inc, inc.id, expected_version)
        found = recs(_TASK_INCIDENT_LOCKED, conn, {"b_id": task_id})
        if not found:
            raise NotFound(what="task", ref=task_id)
        inc = self._checked(conn, found[0], found[0].id, expected_version)
        return recs(_TASK, conn, {"b_id": task_id})[0], inc

    def _chain(self, stored: list[Any]) -> list[tuple[str, int]]:
        """A task's escalation steps; with a rota, one more for the backup after the last on-call step."""
        plan = [(str(t), int(o)) for t, o in stored]
        return with_backup(plan) if self.roster.rota is not None else plan

    def _on_call(self, s: Session | Connection, now: datetime) -> OnCall:
        """Who is on call at `now` (and the backup): stored shifts, else the rota, else the roster."""
        rows = _SHIFTS_AT.rows(_connection(s), {"b_now": now})
        return on_call(now, self.routing.tz, rotation=self.roster.rota, roster_windows=self.roster.on_call_windows(),
                       shifts=[Shift(*r) for r in rows])

    def task_id(self, incident_id: int, key: str) -> int:
        """`find_task`'s id by one prebuilt read outside any transaction (asked before every task step of a drill,
        where an ORM read was a tenth of the CPU); an unknown key fails as `find_task` does, naming the keys."""
        rows = _TASK_ID.read(self.engine, {"b_inc": incident_id, "b_key": key})
        return rows[0][0] if rows else self.find_task(incident_id, key).id or 0

    def find_task(self, incident_id: int, key: str) -> Task:
        """The current-cycle task of an incident by its playbook key (latest if re-entered)."""
        from sqlmodel import col, select

        from crisis.store.models import Task

        with read_session(self.engine) as s:
            task = s.exec(select(Task).where(Task.incident_id == incident_id, Task.key == key)
                          .order_by(col(Task.cycle).desc(), col(Task.id).desc())).first()
            if task is None:
                keys = s.exec(select(Task.key).where(Task.incident_id == incident_id)).all()
                raise NotFound(f"incident #{incident_id} has no task '{key}' (tasks: {', '.join(sorted(set(keys)))})")
            return task

    def _notify(self, tx: _Tx, inc: Incident | Rec | None, *, kind: str, key: str, recipient: str, now: datetime,
                task: Task | Rec | None = None, **facts: Any) -> None:
        """Queue a message *kind* with its facts (the text is rendered at delivery, crisis.notify.messages)."""
        if inc is not None:
            facts = {"incident": inc.id, "title": inc.title, "severity": inc.severity, "stage": inc.stage, **facts}
        if task is not None:
            facts = {"task": task.id, "task_zh": task.title_zh, "task_en": task.title_en, "group": task.group,
                     "assignee": task.assignee, "due_at": task.due_at.isoformat() if task.due_at else None, **facts}
        tx.outbox.extend(messages(kind=kind, key=key, recipient=recipient, incident_id=inc.id if inc else None,
                                  facts=facts, now=now, roster=self.roster, routing=self.routing))

