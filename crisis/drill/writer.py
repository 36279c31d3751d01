"""Scoring a drill incident and writing its report files: in the replay's own process, or by one forked worker.

Why a worker: scoring an incident, building its report context and rendering the six Markdown reports and
scorecard.json is a third of a 100-incident replay's CPU and needs nothing but the incident's stored rows (plain
values, read by the replay at the incident's end: one snapshot, the same five reads as crisis.views), its
roster and playbooks, so on a machine with a second CPU all of it runs there while the replay goes on with the
next incidents; the worker sends back the incident's report document (scorecard.json's content), which the
terminal summary and `--json` show. Only an instant replay of many incidents uses it (`crisis drill run` on a
folder or a surge, whose terminal summary is one line per incident): a single incident, or a paced replay,
scores, writes and prints as it goes.

The worker is forked (it inherits the loaded code, compiled templates, roster and playbooks, and starts in
milliseconds); on other systems than Linux (no fork, or macOS where forking a process is unsafe) the files are
written in the replay's process. A write that fails fails the drill, as before: its error is raised at the next
incident's end or when the replay finishes, and the drill's folder is removed as for any failed run. The files
are the same, byte for byte, wherever they are written.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from crisis.playbook import PlaybookSet
from crisis.roster import Roster
from crisis.scorecard import Expectation
from crisis.store.lite import snapshot
from crisis.store.records import TABLES, Escalation, Event, Incident, Statement, Task, build, columns

# The incident's snapshot, as crisis.views.incident_detail reads it (the orders the scorecard relies on).
_READS = ((Incident, "WHERE id = :i"), (Task, "WHERE incident_id = :i ORDER BY id"),
          (Escalation, "WHERE incident_id = :i ORDER BY fired_at, id"),
          (Event, "WHERE incident_id = :i ORDER BY at, id"),
          (Statement, "WHERE incident_id = :i ORDER BY id"))
_SQL = tuple(f"SELECT {columns(cls)} FROM {TABLES[cls]} {rest}" for cls, rest in _READS)

Rows = tuple[list[tuple[Any, ...]], ...]  # per read of _READS, the rows as the driver returned them


def read_rows(engine: Engine, incident_id: int) -> Rows:
    """The incident's rows from one read transaction, raw (records are built from them where they are used). On
    SQLite straight on a pooled driver connection (in autocommit: BEGIN … ROLLBACK makes the five reads one
    snapshot), a tenth of what the same reads cost through SQLAlchemy."""
    params = {"i": incident_id}
    if engine.dialect.name != "sqlite":
        with snapshot(engine) as snap:
            return tuple([tuple(r) for r in snap.rows(sql, params)] for sql in _SQL)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        try:
            return tuple(cursor.execute(sql, params).fetchall() for sql in _SQL)
        finally:
            cursor.execute("ROLLBACK")
            cursor.close()
    finally:
        raw.close()


@dataclass(frozen=True)
class Job:
    """One incident's scorecard and files: what they are made from (plain data, cheap to send to the worker)."""

    rows: Rows
    expectations: list[Expectation]
    scenario: dict[str, Any]
    run: dict[str, Any]
    tz: str
    at: datetime  # the drill's time at the incident's end (the reports' issue time, overdue flags)
    out_dir: Path
    formats: tuple[str, ...]
    notifications: str  # notifications.jsonl's text


def write_files(ctx: dict[str, Any], out_dir: Path, formats: tuple[str, ...], notifications: str) -> list[Path]:
    """The incident's reports, scorecard.json and notifications.jsonl; the paths written."""
    from crisis import reports

    written = reports.write_context(ctx, out_dir, formats=formats)
    path = out_dir / "notifications.jsonl"
    path.write_text(notifications, encoding="utf-8")
    return [*written, path]


def card_of(rows: Rows, expectations: list[Expectation], roster: Roster) -> dict[str, Any]:
    """The incident's scorecard at its scenario's end, from its rows: `scorecard.build`'s, without the database."""
    from crisis import scorecard

    inc, tasks, escalations, events, statements = ([build(cls, r) for r in of]
                                                    for (cls, _), of in zip(_READS, rows, strict=True))
    return scorecard.score(inc[0], tasks, escalations, events, statements,  # type: ignore[arg-type]
                           names={p.id: p.name for p in roster.people}, expectations=expectations, finished=True)


def make_files(job: Job, roster: Roster, playbooks: PlaybookSet) -> tuple[dict[str, Any], list[Path]]:
    """Score the incident, write its files; its report document (the keys of scorecard.json) and the paths."""
    from crisis import reports

    card = card_of(job.rows, job.expectations, roster)
    ctx = reports.context_of(card, roster, playbooks, at=job.at, tz=job.tz, scenario=job.scenario, run=job.run)
    written = write_files(ctx, job.out_dir, job.formats, job.notifications)  # looked up here: tests patch it
    return reports.document(ctx), written


class Writer:
    """Scores and writes each incident in the replay's process, when its scenario ends."""

    def __init__(self, roster: Roster, playbooks: PlaybookSet) -> None:
        self.roster, self.playbooks = roster, playbooks

    def write(self, job: Job) -> Future[tuple[dict[str, Any], list[Path]]]:
        """Score and write (or have it done); the document and the paths written here (none by a worker)."""
        done: Future[tuple[dict[str, Any], list[Path]]] = Future()
        done.set_result(make_files(job, self.roster, self.playbooks))  # a failure raises here, at once
        return done

    def finish(self, *, failed: bool) -> None:
        """Every write done (raising the first that failed); after a failed replay, what has not started dropped."""


_books: tuple[Roster, PlaybookSet] | None = None  # the worker's roster and playbooks (set when it starts)


def _start_worker(roster: Roster, playbooks: PlaybookSet) -> None:
    global _books
    _books = (roster, playbooks)


def _in_worker(job: Job) -> tuple[dict[str, Any], list[Path]]:
    assert _books is not None
    document, _ = make_files(job, *_books)
    return document, []  # the paths are the replay's to print only for a single incident


class Background(Writer):
    """One forked worker scoring incidents and writing their files in the order they ended."""

    def __init__(self, roster: Roster, playbooks: PlaybookSet) -> None:
        super().__init__(roster, playbooks)
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future[tuple[dict[str, Any], list[Path]]]] = []

    def write(self, job: Job) -> Future[tuple[dict[str, Any], list[Path]]]:
        for done in [f for f in self._pending if f.done()]:
            done.result()  # an earlier incident's write failed: stop the drill now
            self._pending.remove(done)
        if self._pool is None:
            sys.stdout.flush()  # the forked child must not write the parent's buffered output a second time
            sys.stderr.flush()
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_start_worker, initargs=(self.roster, self.playbooks))
        future = self._pool.submit(_in_worker, job)
        self._pending.append(future)
        return future

    def finish(self, *, failed: bool) -> None:
        if self._pool is None:
            return
        try:
            if not failed:
                for f in self._pending:
                    f.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def report_writer(background: bool, roster: Roster, playbooks: PlaybookSet) -> Iterator[Writer]:
    """The replay's writer (a forked worker if `background` and the platform can fork); every write is done
    when the block ends."""
    fork = background and sys.platform.startswith("linux")  # fork is safe there
    writer = Background(roster, playbooks) if fork else Writer(roster, playbooks)
    try:
        yield writer
    except BaseException:
        writer.finish(failed=True)
        raise
    writer.finish(failed=False)
