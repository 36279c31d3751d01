"""Scoring a drill incident and writing its report files: in the replay's own process, or by forked workers.

Why a worker: scoring an incident, building its report context and rendering the six Markdown reports and
scorecard.json is a third of a 100-incident replay's CPU and needs nothing but the incident's stored rows (plain
values, read by the replay at the incident's end: one snapshot, the same five reads as crisis.views), its
roster and playbooks, so on a machine with a second CPU all of it runs there while the replay goes on with the
next incidents; the worker sends back the incident's report document (scorecard.json's content), which the
terminal summary and `--json` show. Only an instant replay of many incidents uses it (`crisis drill run` on a
folder or a surge, whose terminal summary is one line per incident): a single incident, or a paced replay,
scores, writes and prints as it goes.

The workers (two where there are two CPUs, see Background) are forked when the replay starts (they inherit the
loaded code, roster and playbooks, start in milliseconds and compile the templates while the replay runs); on
other systems than Linux (no fork, or macOS where forking a process is unsafe) the files are
written in the replay's process. A write that fails fails the drill, as before: its error is raised at the next
incident's end or when the replay finishes, and the drill's folder is removed as for any failed run. The files
are the same, byte for byte, wherever they are written.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
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
    summary_only: bool = False  # send back only `summary(document)` (see there)


# What a many-incident replay prints of each incident (its one line) and returns without --json: the document's
# small parts. The whole document (~90 KB of values, the timeline most of it) is in the incident's scorecard.json;
# sending a hundred of them back from the workers, to be thrown away, was ~9 MB pickled and unpickled at the end.
SUMMARY_KEYS = ("scenario", "run", "incident", "metrics", "expectations")


def summary(document: dict[str, Any]) -> dict[str, Any]:
    return {k: document[k] for k in SUMMARY_KEYS}


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
    """Score the incident, write its files; its report document (the keys of scorecard.json, or only its summary
    if the job says so) and the paths."""
    from crisis import reports

    card = card_of(job.rows, job.expectations, roster)
    ctx = reports.context_of(card, roster, playbooks, at=job.at, tz=job.tz, scenario=job.scenario, run=job.run)
    written = write_files(ctx, job.out_dir, job.formats, job.notifications)  # looked up here: tests patch it
    document = reports.document(ctx)
    return (summary(document) if job.summary_only else document), written


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


WORKERS = min(2, os.cpu_count() or 1)  # see Background
_PIPE_BYTES = 1 << 20  # room for ~50 incidents' rows waiting for the worker (Linux's default limit for a pipe)


def _serve(jobs: Connection, answers: Connection, roster: Roster, playbooks: PlaybookSet,
           inherited: list[Connection]) -> None:
    """The worker: score and write each job received, in order; at the end (None) send every document back at
    once. A failure is sent at once instead, and the worker stops. First it closes the replay's ends of every
    worker's pipes that the fork copied (its own included): a copy held here would keep a worker from seeing the
    replay close its pipe, and the replay from seeing a worker die."""
    for end in inherited:
        end.close()
    _warm()
    documents = []
    while (job := jobs.recv()) is not None:
        try:
            documents.append(make_files(job, roster, playbooks)[0])
        except BaseException as exc:
            _send_failure(answers, exc)
            return
    answers.send(("done", documents))


def _warm() -> None:
    """Load what scoring and rendering need (the report modules, the six compiled templates: ~0.13 s) while the
    replay goes on, before the first incident ends, instead of at the first job. Anything wrong here (a missing
    template) is left for the first job to raise, where a failure is reported."""
    from crisis import reports

    with suppress(Exception):
        reports.preload()


def _send_failure(answers: Connection, exc: BaseException) -> None:
    try:
        answers.send(("failed", exc))
    except Exception:  # an error that does not pickle: its text
        answers.send(("failed", RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    """One forked worker process: jobs go down one pipe, and nothing comes back until the end (or a failure)."""

    def __init__(self, roster: Roster, playbooks: PlaybookSet, others: list[_Worker]) -> None:
        context = multiprocessing.get_context("fork")
        jobs_out, self.jobs = context.Pipe(duplex=False)
        self.answers, answers_in = context.Pipe(duplex=False)
        with suppress(OSError):  # a smaller pipe only makes the replay wait for the worker sooner
            fcntl.fcntl(self.jobs.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        sys.stdout.flush()  # the forked child must not write the parent's buffered output a second time
        sys.stderr.flush()
        inherited = [self.jobs, self.answers, *(end for w in others for end in (w.jobs, w.answers))]
        self.process = context.Process(target=_serve, args=(jobs_out, answers_in, roster, playbooks, inherited),
                                       name="drill-reports", daemon=True)
        self.process.start()
        jobs_out.close()  # the worker's ends: closed here, so a worker that stops is seen as a broken pipe
        answers_in.close()
        self.pending: list[Future[tuple[dict[str, Any], list[Path]]]] = []

    def send(self, job: Job | None) -> None:
        try:
            self.jobs.send(job)
        except BrokenPipeError:  # the worker stopped: it failed, and said why
            self.answer(wait=True)
            raise

    def answer(self, *, wait: bool) -> None:
        """Its documents (at the end) or its failure (raised), if it has answered or `wait`."""
        if not (wait or self.answers.poll()):
            return
        try:
            kind, what = self.answers.recv()
        except EOFError:
            raise RuntimeError("the drill's report worker ended without a word") from None
        if kind == "failed":
            raise what
        for future, document in zip(self.pending, what, strict=True):
            future.set_result((document, []))  # the paths are the replay's to print only for a single incident

    def close(self, *, failed: bool) -> None:
        self.jobs.close()
        if failed:
            self.process.terminate()  # what it has not written is not wanted (the folder goes)
        self.process.join()
        self.answers.close()


class Background(Writer):
    """WORKERS forked workers scoring incidents and writing their files, taking incidents in turn.

    Why two: a surge's incidents all end in its last hours, when the replay itself has little left to do, so
    the files are most of what is left to wait for; two workers halve that on two CPUs. Why pipes and no
    executor: no thread in the replay's process (a ProcessPoolExecutor's result thread cost the replay ~0.17 s
    of CPU for 100 incidents), and no way for the processes to wait for each other (a worker never blocks on
    sending while the replay sends it jobs). The documents come back in the order the incidents ended."""

    def __init__(self, roster: Roster, playbooks: PlaybookSet) -> None:
        super().__init__(roster, playbooks)
        self._workers: list[_Worker] = []
        self._sent = 0
        try:  # forked now, at the replay's start: they load while it runs (see _warm), and a small heap is cheap
            for _ in range(WORKERS):  # to copy
                self._workers.append(_Worker(roster, playbooks, self._workers))
        except BaseException:  # a fork refused (no memory, no processes left): none of them is left running
            for w in self._workers:
                w.close(failed=True)
            raise

    def write(self, job: Job) -> Future[tuple[dict[str, Any], list[Path]]]:
        for w in self._workers:
            w.answer(wait=False)  # an earlier incident's write failed: stop the drill now
        worker = self._workers[self._sent % len(self._workers)]
        worker.send(job)
        self._sent += 1
        future: Future[tuple[dict[str, Any], list[Path]]] = Future()
        worker.pending.append(future)
        return future

    def finish(self, *, failed: bool) -> None:
        done = False
        try:
            if not failed:
                for w in self._workers:
                    w.send(None)
                for w in self._workers:
                    w.answer(wait=True)
                done = True
        finally:  # one worker's failure stops the others too: their files go with the drill's folder
            for w in self._workers:
                w.close(failed=not done)


@contextmanager
def report_writer(background: bool, roster: Roster, playbooks: PlaybookSet) -> Iterator[Writer]:
    """The replay's writer (forked workers if `background` and the platform can fork); every write is done when
    the block ends."""
    fork = background and sys.platform.startswith("linux")  # fork is safe there
    writer = Background(roster, playbooks) if fork else Writer(roster, playbooks)
    try:
        yield writer
    except BaseException:
        writer.finish(failed=True)
        raise
    writer.finish(failed=False)
