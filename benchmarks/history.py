"""A large SQLite history for the scale benchmarks, written with bulk inserts (not through the service).

Shape (per incident; `open_share` of the newest incidents are still open):
- closed incident: 5 done tasks, 2 acknowledged escalations, 12 audit events, 3 delivered notifications
  (× 2 outbox channels), 3 lines in the notification file;
- open incident (stage responding): 5 open tasks whose next escalation step is pending in the future (so
  100,000 incidents at 20 % open = 100,000 pending steps); the first task is overdue with one unacknowledged
  escalation fired (what `crisis escalations --pending` lists).

Columns are filled from the application's own tables (`create_db`), with scalar model defaults for any column
the generator does not know, so the generator follows schema changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table

from crisis.store import models
from crisis.store.db import make_engine
from crisis.store.migrate import create_db

GROUPS = [("monitoring", "info_staff"), ("response", "legal"), ("logistics", "finance"),
          ("monitoring", "commentator"), ("response", "dept_rep")]
FAR = timedelta(days=2)  # pending steps lie this far ahead (never due during a benchmark)
PLAN = [["assignee", 0], ["group_head", 900], ["leadership_head", 1800], ["on_call", 2700]]
CHUNK = 20_000


@dataclass(frozen=True)
class History:
    db: Path
    notify_file: Path
    incidents: int
    open_incidents: int
    pending_tasks: list[int]  # ids of open tasks at escalation level 0 (free to re-time in a benchmark)


def ts(dt: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (naive UTC)."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _defaults(table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in table.columns:
        d = c.default
        if d is not None and getattr(d, "is_scalar", False):
            out[c.name] = d.arg
    return out


class _Writer:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def insert(self, table: Table, rows: Iterable[dict[str, Any]]) -> None:
        defaults = _defaults(table)
        cols: list[str] | None = None
        batch: list[tuple[Any, ...]] = []
        sql = ""
        for row in rows:
            if cols is None:
                cols = [c.name for c in table.columns if c.name in row or c.name in defaults]
                sql = (f'INSERT INTO "{table.name}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
                       f'VALUES ({", ".join("?" for _ in cols)})')
            batch.append(tuple(_sql(row[c]) if c in row else _sql(defaults[c]) for c in cols))
            if len(batch) >= CHUNK:
                self.con.executemany(sql, batch)
                batch.clear()
        if batch:
            self.con.executemany(sql, batch)


def _sql(v: Any) -> Any:
    if isinstance(v, datetime):
        return ts(v)
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return v


def build(dir_: Path, incidents: int = 100_000, open_share: float = 0.2, now: datetime | None = None) -> History:
    """Write the database and the notification file into `dir_`; returns where they are."""
    now = now or datetime.now(UTC)
    db = dir_ / "history.db"
    notify_file = dir_ / "notifications.jsonl"
    engine = make_engine(f"sqlite:///{db}")
    create_db(engine)
    engine.dispose()
    n_open = int(incidents * open_share)
    first_open = incidents - n_open + 1
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    w = _Writer(con)
    T = {t.name: t for t in models.SQLModel.metadata.sorted_tables}
    w.insert(T["incident"], _incidents(incidents, first_open, now))
    w.insert(T["task"], _tasks(incidents, first_open, now))
    w.insert(T["escalation"], _escalations(incidents, first_open, now))
    w.insert(T["event"], _events(incidents, first_open, now))
    with notify_file.open("w", encoding="utf-8") as fh:
        w.insert(T["outboxmessage"], _outbox(incidents, now, fh))
    con.execute("COMMIT")
    pending = [r[0] for r in con.execute("SELECT id FROM task WHERE status = 'open' AND escalation_level = 0 "
                                         "ORDER BY id")]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    _index_notifications(notify_file)
    return History(db, notify_file, incidents, n_open, pending)


def _index_notifications(path: Path) -> None:
    """Steady state of a long-running deployment: the file channel's key index is up to date with the file
    (its one-time indexing of a pre-existing file is not what a command pays every day)."""
    from crisis.notify.channels import FileChannel

    channel = FileChannel(path)
    index = getattr(channel, "_index", None)
    if index is None:  # a channel without a side index: nothing to warm
        return
    with path.open("rb") as fh:
        index.execute("BEGIN IMMEDIATE")
        index_offset = channel._catch_up(fh)
        channel._set_offset(index_offset)
        index.execute("COMMIT")
    index.close()


def _opened(i: int, incidents: int, now: datetime) -> datetime:
    return now - timedelta(days=1) - timedelta(minutes=5) * (incidents - i)


def _incidents(n: int, first_open: int, now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        opened = _opened(i, n, now)
        is_open = i >= first_open
        yield {"id": i, "title": f"历史事件 history incident {i}", "category": "medical_dispute",
               "source_url": None, "signals": {"reposts": i % 5000}, "stage": "responding" if is_open else "closed",
               "severity": "II", "decision": "activate", "cycle": 1, "opened_by": "duty_officer",
               "opened_at": opened, "stage_entered_at": opened + timedelta(hours=2),
               "closed_at": None if is_open else opened + timedelta(days=3), "playbook_version": "1", "version": 4}


def _tasks(n: int, first_open: int, now: datetime) -> Iterator[dict[str, Any]]:
    tid = 0
    for i in range(1, n + 1):
        opened = _opened(i, n, now)
        is_open = i >= first_open
        for k, (group, who) in enumerate(GROUPS):
            tid += 1
            row = {"id": tid, "incident_id": i, "cycle": 1, "stage": "responding", "key": f"task_{k}",
                   "group": group, "title_zh": f"任务{k}", "title_en": f"Task {k}", "required": True,
                   "assignee": who, "anchor": "stage", "created_at": opened, "escalation_plan": PLAN,
                   "acked_at": None, "acked_by": None, "note": None}
            if not is_open:
                row.update(due_at=opened + timedelta(hours=1), status="done", done_at=opened + timedelta(hours=2),
                           done_by=who, escalation_level=1 if k < 2 else 0, next_escalation_at=None)
            elif k == 0:  # overdue, first step fired and not acknowledged, next step far ahead
                due = now - timedelta(hours=1)
                plan = [["assignee", 0], ["group_head", int((FAR + timedelta(hours=1)).total_seconds())]]
                row.update(due_at=due, status="open", done_at=None, done_by=None, escalation_plan=plan,
                           escalation_level=1, next_escalation_at=due + timedelta(seconds=plan[1][1]))
            else:
                due = now + FAR + timedelta(seconds=(i * 5 + k) % 86_400)
                row.update(due_at=due, status="open", done_at=None, done_by=None, escalation_level=0,
                           next_escalation_at=due)
            yield row


def _escalations(n: int, first_open: int, now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        opened = _opened(i, n, now)
        base_task = (i - 1) * len(GROUPS) + 1
        if i >= first_open:
            due = now - timedelta(hours=1)
            yield {"task_id": base_task, "incident_id": i, "level": 1, "target": "assignee", "recipient": "info_staff",
                   "scheduled_at": due, "fired_at": due, "late_seconds": 0.2, "acked_at": None, "acked_by": None}
            continue
        for k in range(2):
            due = opened + timedelta(hours=1)
            yield {"task_id": base_task + k, "incident_id": i, "level": 1, "target": "assignee",
                   "recipient": GROUPS[k][1], "scheduled_at": due, "fired_at": due, "late_seconds": 0.3,
                   "acked_at": due + timedelta(minutes=5), "acked_by": GROUPS[k][1]}


EVENT_KINDS = ["incident_opened", "task_assigned", "task_assigned", "stage_changed", "task_done", "stage_changed",
               "task_assigned", "escalation_fired", "escalation_acknowledged", "task_done", "stage_changed", "inject"]


def _events(n: int, first_open: int, now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        opened = _opened(i, n, now)
        for k, kind in enumerate(EVENT_KINDS):
            yield {"incident_id": i, "at": opened + timedelta(minutes=10 * k), "actor": "duty_officer", "kind": kind,
                   "from_state": None, "to_state": None, "task_id": None, "data": {"key": f"task_{k % 5}"}}


def _outbox(n: int, now: datetime, fh: Any) -> Iterator[dict[str, Any]]:
    for i in range(1, n + 1):
        opened = _opened(i, n, now)
        for k in range(3):
            key = f"task:{(i - 1) * len(GROUPS) + k + 1}:assigned"
            subject = f"[舆情#{i} II级] 新任务 New task: 任务{k}"
            body = f"任务{k} / Task {k}\n组别 Group: 监测组 / Monitoring\n截止 Due: {opened.isoformat()}"
            for channel in ("log", "file"):
                row = {"dedupe_key": f"{key}:{channel}", "channel": channel, "recipient": GROUPS[k][1],
                       "incident_id": i, "subject": subject, "body": body, "payload": {"type": "task_assigned"},
                       "created_at": opened, "delivered_at": opened, "attempts": 1, "last_error": None}
                if channel == "file":
                    fh.write(json.dumps({"key": row["dedupe_key"], "to": row["recipient"], "incident": i,
                                         "subject": subject, "body": body, "payload": row["payload"],
                                         "created_at": opened.isoformat()}, ensure_ascii=False) + "\n")
                yield row
