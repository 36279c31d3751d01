"""Listings, each one page from one snapshot: the incident list (the board), escalations, a person's work and
the audit events since an id (live updates). The CLI, the API and the web board read the same pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crisis.engine.fsm import FINAL
from crisis.store.lite import in_list, snapshot
from crisis.store.records import Escalation, Event, Incident, Task, utc
from crisis.views.paging import DEFAULT_PAGE, Page, page_bounds, select_records


@dataclass
class IncidentRow:
    """One line of the incident list: the incident and what needs attention in it at the snapshot's time."""

    incident: Incident
    next_deadline: datetime | None  # earliest due time among its open tasks
    overdue: int  # open tasks past their deadline
    unacked: int  # escalations of open tasks nobody has acknowledged (nor the task's chain since they fired)
    open_tasks: int = 0


def incident_list(svc: Any, *, stage: str | None = None, category: str | None = None, final: bool | None = False,
                  watch: bool = True, limit: int | None = DEFAULT_PAGE, offset: int = 0) -> Page[IncidentRow]:
    """Incidents newest first, one page, filtered by stage, category and open (`final=False`, the default) /
    final (`True`) / either (`None`); `watch=False` leaves out the watch-listed (the board's "open" tab).
    One snapshot and a fixed number of statements whatever the page size: the per-incident figures come from
    grouped queries over the page's ids, never one query per incident."""
    now = svc.clock.now()
    conds: list[str] = []
    p: dict[str, Any] = {}
    if stage is not None:
        conds.append("stage = :stage")
        p["stage"] = stage
    if category is not None:
        conds.append("category = :category")
        p["category"] = category
    if final is not None:
        conds.append(f"stage {'IN' if final else 'NOT IN'} {in_list('final', FINAL, p)}")
    if not watch:
        conds.append("stage != 'watch'")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    with snapshot(svc.engine) as snap:
        total = snap.rows(f"SELECT count(*) FROM incident {where}", p)[0][0]
        items = select_records(snap, Incident, f"{where} ORDER BY id DESC LIMIT :limit OFFSET :offset",
                               {**p, **page_bounds(limit, offset)})
        q: dict[str, Any] = {"now": snap.time(now)}
        ids = in_list("ids", [i.id for i in items], q)
        # "open" is tested inside the aggregates, not in WHERE: a status-first index must not look cheaper to
        # the planner than the page's few incidents (it would walk every open task of the history)
        due = {iid: (utc(nxt), int(n or 0), int(k or 0)) for iid, nxt, n, k in snap.rows(
            "SELECT incident_id, min(CASE WHEN status = 'open' THEN due_at END), "
            "sum(CASE WHEN status = 'open' AND due_at < :now THEN 1 ELSE 0 END), "  # a NULL deadline is never late
            f"sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END) FROM task WHERE incident_id IN {ids} "
            "GROUP BY incident_id", q)}
        unacked = {iid: int(n or 0) for iid, n in snap.rows(
            "SELECT e.incident_id, sum(CASE WHEN t.status = 'open' THEN 1 ELSE 0 END) FROM escalation e "
            f"JOIN task t ON t.id = e.task_id WHERE e.incident_id IN {ids} AND e.acked_at IS NULL "
            # answered by its own acknowledgement or by one of its task's chain made after it fired
            # (acknowledging holds the whole chain: crisis.acklink)
            "AND (t.acked_at IS NULL OR e.fired_at > t.acked_at) GROUP BY e.incident_id", q)}
    rows = []
    for i in items:
        nxt, late_n, n_open = due.get(i.id or 0, (None, 0, 0))
        rows.append(IncidentRow(i, nxt, late_n, unacked.get(i.id or 0, 0), n_open))
    return Page(rows, total, limit, offset)


def escalation_page(svc: Any, incident_id: int | None = None, *, pending: bool = False,
                    limit: int | None = DEFAULT_PAGE, offset: int = 0) -> Page[Escalation]:
    """Escalations, one page: pending ones (of open tasks, acknowledged or not: an acknowledgement only holds
    the chain for a while) most overdue first, the others newest first."""
    p: dict[str, Any] = {}
    conds = []
    if incident_id is not None:
        conds.append("e.incident_id = :i")
        p["i"] = incident_id
    join = ""
    if pending:
        join = "JOIN task t ON t.id = e.task_id "
        conds.append("t.status = 'open'")
    where = join + (f"WHERE {' AND '.join(conds)}" if conds else "")
    # t.id rather than its equal e.task_id: the order the (status, due_at) index walks in, so a page stops early
    order = "t.due_at, t.id, e.level DESC" if pending else "e.fired_at DESC, e.id DESC"
    with snapshot(svc.engine) as snap:
        items = select_records(snap, Escalation, f"{where} ORDER BY {order} LIMIT :limit OFFSET :offset",
                               {**p, **page_bounds(limit, offset)}, alias="e")
        total = snap.rows(f"SELECT count(*) FROM escalation e {where}", p)[0][0]
    return Page(items, total, limit, offset)


@dataclass
class MyWork:
    """What a person has to do: open tasks assigned to them and escalations that paged them for open tasks."""

    person: str
    tasks: list[Task]  # newest first
    escalations: list[Escalation]  # newest first
    at: datetime
    titles: dict[int, str] = field(default_factory=dict)  # incident id → title, for those listed


def my_work(svc: Any, person: str) -> MyWork:
    """A person's open tasks and pending escalations, newest first, with their incidents' titles, from one
    read transaction (three statements)."""
    now = svc.clock.now()
    p: dict[str, Any] = {"who": person}
    with snapshot(svc.engine) as snap:
        tasks = select_records(snap, Task, "WHERE assignee = :who AND status = 'open' ORDER BY id DESC", p)
        escs = select_records(snap, Escalation, "JOIN task t ON t.id = e.task_id WHERE e.recipient = :who "
                               "AND t.status = 'open' ORDER BY e.fired_at DESC, e.id DESC", p, alias="e")
        ids = sorted({t.incident_id for t in tasks} | {e.incident_id for e in escs})
        titles = {i: title for i, title in snap.rows(f"SELECT id, title FROM incident WHERE id IN "
                                                      f"{in_list('i', ids, p)}", p)} if ids else {}
    return MyWork(person, tasks, escs, now, titles)


def events_since(svc: Any, since_id: int, *, limit: int = DEFAULT_PAGE) -> list[Event]:
    """Audit events of every incident after event `since_id`, in id order (poll with the last id)."""
    with snapshot(svc.engine) as snap:
        return select_records(snap, Event, "WHERE id > :since ORDER BY id LIMIT :limit",
                              {"since": since_id, "limit": limit})
