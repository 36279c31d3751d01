"""Deliver outbox rows without ever stalling the engine.

Each round claims a batch per channel in a short write transaction (a lease in `claimed_until`, the attempt
counted), renders and delivers it *outside* any transaction on that channel's own bounded worker pool, and
marks the results in another short transaction. A channel whose far end hangs only fills its own pool: the
claim skips a channel with no room, so every other channel (and the escalation clock, which never waits on
delivery) goes on. Failures back off exponentially (`next_attempt_at`); after the last attempt the row stays
visible as failed, the recipient's next own channel takes over, and when none is left the on-call
administrator is paged about it. A process killed mid-batch leaves leased rows that are claimed again when
the lease runs out; the channels' idempotency on the dedupe key makes that exactly-once at the recipient.

Messages held for quiet hours are claimed per recipient together and sent as one digest.

Which rows are due and how they are leased: crisis.notify.claims; what becomes of a failed row:
crisis.notify.failures.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection, Engine

from crisis.clock import Clock
from crisis.errors import NotFound
from crisis.escaping import md_inline
from crisis.logs import get_logger
from crisis.notify import claims, failures
from crisis.notify.channels import Channel, Delivery
from crisis.notify.claims import Row
from crisis.notify.messages import Item, Rendered, Renderer
from crisis.notify.outbox import Routing
from crisis.store.prepared import Prepared
from crisis.store.tables import OUTBOXMESSAGE as T

# Run on the cursor (crisis.store.prepared): SQLAlchemy's per-execute path cost more than the statement.
_MARK = Prepared(update(T).where(T.c.id == bindparam("_id")).values(
    delivered_at=bindparam("_now", type_=T.c.delivered_at.type), claimed_until=None, last_error=None,
    subject=bindparam("_subject"), receipt=bindparam("_receipt"), attempts=bindparam("_attempts")))
SERIAL = frozenset({"file", "log", "drill", "memory"})  # local: one worker each keeps their order


@dataclass(frozen=True)
class Policy:
    timeout: float = 10.0  # seconds one delivery may take (socket timeout; abandoned after twice that)
    max_attempts: int = 6
    backoff: float = 30.0  # first retry after this many seconds, doubling up to `backoff_cap`
    backoff_cap: float = 3600.0
    lease: float = 120.0  # a claimed row is not claimed again before this (must exceed 2 × timeout)
    workers: int = 4  # concurrent deliveries per channel
    batch: int = 200

    def retry_at(self, now: datetime, attempts: int) -> datetime:
        return now + timedelta(seconds=min(self.backoff * 2 ** max(attempts - 1, 0), self.backoff_cap))


@dataclass
class _Job:
    delivery: Delivery
    rows: list[Row]
    started: float | None
    future: Future[Any] | None = None  # in a batch (local channels): the call delivering the whole batch
    batched: bool = False
    answer: str | BaseException | None = None  # in a batch: this message's own answer

    def done(self) -> bool:
        """Answered (in a batch: the whole batch, so a round never marks half of one)."""
        return self.future is not None and self.future.done()

    def outcome(self) -> tuple[bool, str]:
        """(delivered?, what the channel said or the error) of a done job."""
        assert self.future is not None
        exc = self.future.exception()
        if self.batched and exc is None:
            if isinstance(self.answer, BaseException):
                return False, _describe(self.answer)
            return self.answer is not None, self.answer or "no answer"
        return (True, self.future.result()) if exc is None else (False, _describe(exc))


@dataclass
class Stats:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    receipts: list[tuple[str, bool, str]] = field(default_factory=list)  # (channel, ok, what it said)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, recipient, error): to tell


class Dispatcher:
    def __init__(self, engine: Engine, channels: Mapping[str, Channel], renderer: Renderer, clock: Clock, *,
                 policy: Policy | None = None, routing: Routing | None = None,
                 on_call: Callable[[datetime], str] | None = None) -> None:
        self.engine, self.channels, self.renderer, self.clock = engine, dict(channels), renderer, clock
        self.policy = policy or Policy()
        self.routing = routing or Routing(channels=tuple(c for c in channels if c in SERIAL))
        self.on_call = on_call
        self.log = get_logger(component="notify")
        self._pools = {n: ThreadPoolExecutor(1 if n in SERIAL else self.policy.workers, f"notify-{n}")
                       for n in self.channels}
        self._jobs: list[_Job] = []
        self._stuck: dict[str, int] = defaultdict(int)  # abandoned deliveries still holding a worker
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._mutex = threading.Lock()  # pump() is not re-entrant
        self._inline = False  # drain_inline: channels deliver in the caller's thread
        self._held_cap = self.policy.batch * 10  # held rows a claim takes at most (whole digests)

    # ------------------------------------------------------------------ driving
    def pump(self) -> Stats:
        """One round: mark what finished and claim what channels have room for, in one short write transaction
        (the fewer write transactions, the less delivery and firing wait for each other's lock), then start it."""
        with self._mutex:
            now = self.clock.now()
            done = self._finished()
            rooms = {name: room for name in self.channels if (room := self._room(name)) > 0}
            stats = Stats()
            if not done and not rooms:
                return stats
            with self.engine.begin() as conn:
                self._mark(conn, done, now, stats)
                claimed = [claims.claim(conn, name, now, room, self._held_cap, self.policy.lease)
                           for name, room in rooms.items()]
            for rows in claimed:
                self._start(rows)
            return stats

    def drain(self, max_seconds: float | None = None) -> Stats:
        """Deliver everything due now and wait for it (the CLI, drills, tests)."""
        total = Stats()
        limit = None if max_seconds is None else time.monotonic() + max_seconds
        while True:
            s = self.pump()
            total.delivered += s.delivered
            total.retrying += s.retrying
            total.failed += s.failed
            total.receipts += s.receipts
            total.failures += s.failures
            if not self._jobs and not claims.due_exists(self.engine, list(self.channels), self.clock.now()):
                return total
            if limit is not None and time.monotonic() > limit:
                return total
            self._wait_any(0.05)

    def drain_inline(self) -> Stats:
        """`drain` for local channels that answer at once (a drill's memory channel): each round claims, delivers
        in the caller's thread and marks in one write transaction, and the rounds stop when a claim took every
        due row. The same rows are delivered in the same order and marked the same way as by `drain`, without
        the worker thread, the wait for it and the second round's transaction that only marks (a drill drains
        at ~1,600 wakes)."""
        if any(name not in SERIAL for name in self.channels):
            raise ValueError("drain_inline delivers only to local channels")
        total = Stats()
        with self._mutex:
            self._inline = True
            try:
                while not self._round_inline(total):
                    pass
            finally:
                self._inline = False
        return total

    def _round_inline(self, stats: Stats) -> bool:
        """One inline round; True when nothing more is due (every claim came back short of its limits and
        nothing failed, so no retry or follow-up row can be due now)."""
        now = self.clock.now()
        failed = stats.retrying + stats.failed
        with self.engine.begin() as conn:
            exhausted = True
            for name in self.channels:
                rows, took_all = claims.claim_all(conn, name, now, self._room(name), self._held_cap,
                                                  self.policy.lease)
                exhausted &= took_all
                self._start(rows)
            self._mark(conn, self._finished(), now, stats)
        return exhausted and stats.retrying + stats.failed == failed

    def start(self) -> None:
        """Deliver in a background thread (the scheduler): `kick()` after each commit that queued messages."""
        if self._thread is not None and self._thread.is_alive():
            return  # one thread per dispatcher, however many owners start it
        self._thread = threading.Thread(target=self._serve, name="notify-dispatch", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stopping.set()
        self._kick.set()
        if self._thread:
            self._thread.join(timeout=self.policy.timeout * 2 + 5)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                self.pump()
            except Exception as exc:  # a bad round must not end delivery: the next one retries
                self.log.exception("notify_round_failed", error=str(exc))
            self._kick.wait(0.05 if self._jobs else 1.0)
            self._kick.clear()

    def _wait_any(self, seconds: float) -> None:
        futures = list({id(j.future): j.future for j in self._jobs if j.future is not None}.values())
        if futures:
            from concurrent.futures import FIRST_COMPLETED, wait

            wait(futures, timeout=seconds, return_when=FIRST_COMPLETED)

    def _room(self, name: str) -> int:
        """How many more rows a channel may take: local ones a whole batch while less than one waits (the next
        batch is rendered while the last one is written; never a sliver of a batch), remote ones twice their
        workers."""
        busy = sum(1 for j in self._jobs if j.delivery.channel == name) + self._stuck[name]
        if name in SERIAL:
            return self.policy.batch if busy < self.policy.batch else 0
        return max(0, self.policy.workers * 2 - busy)

    # ------------------------------------------------------------------ deliver
    def _start(self, rows: list[Row]) -> None:
        held: dict[str, list[Row]] = defaultdict(list)
        groups: list[list[Row]] = []
        for r in rows:
            if r["held_until"] is not None:
                held[r["recipient"]].append(r)
            else:
                groups.append([r])
        groups += held.values()
        batch: dict[str, list[_Job]] = defaultdict(list)
        for group in groups:
            job = self._prepare(group)
            if job is None:
                continue
            if job.delivery.channel in SERIAL:
                batch[job.delivery.channel].append(job)
            else:
                self._submit(job)
        for name, jobs in batch.items():
            self._submit_batch(name, jobs)

    def _prepare(self, rows: list[Row]) -> _Job | None:
        """Render one message; a message that cannot be rendered fails like a refused delivery (retried, then
        visible as failed) instead of stopping every other message of the round (then None: nothing to send)."""
        try:
            return _Job(self._delivery(rows), rows, None)
        except Exception as exc:
            future: Future[str] = Future()
            future.set_exception(exc)
            first = rows[0]
            stub = Delivery(dedupe_key=first["dedupe_key"], channel=first["channel"], kind=first["kind"],
                            recipient=first["recipient"], person=None, subject="", text="", markdown="",
                            incident_id=first["incident_id"], created_at=first["created_at"],
                            ids=tuple(r["id"] for r in rows))
            self._jobs.append(_Job(stub, rows, None, future))
            return None

    def _delivery(self, rows: list[Row]) -> Delivery:
        first = rows[0]
        items = [Item(r["kind"], r["recipient"], dict(r["payload"]), r["created_at"], r["channel"]) for r in rows]
        digest = len(rows) > 1 or first["held_until"] is not None
        if not first["kind"] and not digest:  # queued before messages had kinds: its stored text
            text = Rendered(first["subject"], first["body"], md_inline(first["body"]))
        else:
            md = not getattr(self.channels.get(first["channel"]), "plain", False)
            text = (self.renderer.digest(items, markdown=md) if digest
                    else self.renderer.render(items[0], markdown=md))
        key = (f"digest:{first['channel']}:{first['recipient']}:{first['id']}:{len(rows)}" if digest
               else first["dedupe_key"])
        try:
            person = self.renderer.roster.person(first["recipient"])
        except NotFound:
            person = None
        return Delivery(dedupe_key=key, channel=first["channel"], kind="digest" if digest else first["kind"],
                        recipient=first["recipient"], person=person, subject=text.subject, text=text.text,
                        markdown=text.markdown, incident_id=first["incident_id"], created_at=first["created_at"],
                        facts=dict(first["payload"]) if not digest else {"messages": [r["id"] for r in rows]},
                        ids=tuple(r["id"] for r in rows))

    def _submit(self, job: _Job) -> None:
        """A remote channel: one delivery per worker, so a slow far end holds one worker, not a batch."""
        channel = self.channels[job.delivery.channel]

        def deliver() -> str:
            job.started = time.monotonic()  # the timeout counts from here, not from the queue
            return channel.deliver(job.delivery)

        job.future = self._run(job.delivery.channel, deliver)
        job.future.add_done_callback(lambda _f: self._kick.set())
        self._jobs.append(job)

    def _submit_batch(self, name: str, jobs: list[_Job]) -> None:
        """A local channel: the whole batch in one call (the file channel writes and fsyncs it once); each
        message still gets its own answer, so one that fails does not fail the others."""
        channel = self.channels[name]

        def deliver() -> None:
            started = time.monotonic()
            for job in jobs:
                job.started = started
            try:
                answers = _deliver_batch(channel, [j.delivery for j in jobs])
            except BaseException as exc:  # the write itself failed: every message of the batch is retried
                answers = [exc] * len(jobs)
            for job, answer in zip(jobs, answers, strict=True):
                job.answer = answer

        whole = self._run(name, deliver)
        whole.add_done_callback(lambda _f: self._kick.set())
        for job in jobs:
            job.future, job.batched = whole, True
            self._jobs.append(job)

    def _run(self, name: str, fn: Callable[[], Any]) -> Future[Any]:
        """`fn` on the channel's own pool, or (drain_inline) right here, as an already finished future."""
        if not self._inline:
            return self._pools[name].submit(fn)
        future: Future[Any] = Future()
        try:
            future.set_result(fn())
        except Exception as exc:
            future.set_exception(exc)
        return future

    # ------------------------------------------------------------------ mark
    def _finished(self) -> list[tuple[_Job, bool, str]]:
        """Take the jobs that finished (or were abandoned) out of the running ones, with their outcome."""
        done: list[tuple[_Job, bool, str]] = []
        keep: list[_Job] = []
        for job in self._jobs:
            assert job.future is not None
            if job.done():
                done.append((job, *job.outcome()))
            elif job.started is not None and time.monotonic() - job.started > self.policy.timeout * 2:
                name = job.delivery.channel  # abandoned: its worker stays busy until the socket gives up
                self._stuck[name] += 1
                job.future.add_done_callback(lambda _f, n=name: self._unstick(n))
                done.append((job, False, f"timed out after {self.policy.timeout:g}s"))
            else:
                keep.append(job)
        self._jobs = keep
        return done

    def _mark(self, conn: Connection, done: list[tuple[_Job, bool, str]], now: datetime, stats: Stats) -> None:
        delivered: list[dict[str, Any]] = []
        for job, ok, said in done:
            stats.receipts.append((job.delivery.channel, ok, said))
            if ok:
                stats.delivered += len(job.rows)
                delivered += [{"_id": r["id"], "_now": now, "_subject": job.delivery.subject, "_receipt": said[:500],
                               "_attempts": r["attempts"]} for r in job.rows]
            else:
                stats.failures.append((job.delivery.channel, job.delivery.recipient, said))
                self._failed(conn, job, said, now, stats)
        if delivered:  # one executemany for the whole round
            _MARK.many(conn, delivered)

    def _unstick(self, name: str) -> None:
        self._stuck[name] -= 1

    def _failed(self, conn: Any, job: _Job, error: str, now: datetime, stats: Stats) -> None:
        """Retry the job's rows later, or fail them for good and hand them over (crisis.notify.failures)."""
        self.log.warning("notify_failed", channel=job.delivery.channel, to=job.delivery.recipient, error=error)
        retrying, failed = failures.record(conn, job.rows, error, now, self.policy, self._follow_up)
        stats.retrying += retrying
        stats.failed += failed

    def _follow_up(self, r: Row, error: str, now: datetime) -> list[dict[str, Any]]:
        return failures.follow_up(r, error, now, on_call=self.on_call, roster=self.renderer.roster,
                                  routing=self.routing)


def _deliver_batch(channel: Channel, deliveries: list[Delivery]) -> list[str | BaseException]:
    """The channel's own batch delivery if it has one, else one message after the other (each answered)."""
    batch = getattr(channel, "deliver_batch", None)
    if batch is not None:
        return list(batch(deliveries))
    answers: list[str | BaseException] = []
    for d in deliveries:
        try:
            answers.append(channel.deliver(d))
        except Exception as exc:
            answers.append(exc)
    return answers


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
