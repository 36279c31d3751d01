"""Delivery channels: the `Channel` interface and the local ones (log, file, memory).

A channel gets a rendered `Delivery` and returns what the far end said (a one-line receipt), or raises
`DeliveryError`. It must treat `delivery.dedupe_key` as an idempotency key: delivering the same key twice
must reach the recipient once. Chat robots and webhooks live in crisis.notify.chat, SMTP in
crisis.notify.email.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from crisis.logs import get_logger
from crisis.roster import Person


class DeliveryError(Exception):
    """The channel refused or could not deliver (the far end's answer is in the message)."""


@dataclass(frozen=True)
class Delivery:
    """One rendered message on its way out; a digest covers several outbox rows (`ids`)."""

    dedupe_key: str
    channel: str
    kind: str
    recipient: str
    person: Person | None
    subject: str
    text: str
    markdown: str
    incident_id: int | None
    created_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)
    ids: tuple[int, ...] = ()


class Channel(Protocol):
    name: str

    def deliver(self, message: Delivery) -> str:
        """Deliver or raise DeliveryError; idempotent on message.dedupe_key; returns the far end's answer."""


class LogChannel:
    """Writes notifications to the structured log (console in the CLI, a file in services)."""

    name = "log"
    plain = True  # shows subject and text only: the dispatcher renders no Markdown for it

    def __init__(self) -> None:
        self.log = get_logger(channel="log")

    def deliver(self, message: Delivery) -> str:
        self.log.info("notification", key=message.dedupe_key, to=message.recipient, subject=message.subject)
        return "logged"


class FileChannel:
    """Appends one JSON line per notification; a key already written is skipped.

    The keys written live in a small SQLite index beside the file (`<file>.idx`) with the byte offset up to
    which the file is indexed, so a start never re-reads history: each batch, under an exclusive `flock`,
    indexes only what was appended after that offset (by another process, or by one killed between its write
    and its index update), then checks and appends. Crash-safe in both orders, exact across processes.

    A batch is one `write` and one `fsync` for all its new lines and one index transaction, so the cost of
    durability is paid per batch, not per message. Keys are forgotten `RETAIN` after they were written: the
    outbox retries a message written but never marked within a lease (minutes) of any dispatcher running, so
    the index holds recent keys only and does not grow with history.
    """

    name = "file"
    plain = True  # writes subject and text only: the dispatcher renders no Markdown for it
    RETAIN = 7 * 86400.0  # seconds a written key is remembered (a restart after a longer outage may repeat one)
    PRUNE_EVERY = 600.0  # seconds between two prunings of forgotten keys

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pruned = 0.0
        self._index = sqlite3.connect(str(self.path) + ".idx", check_same_thread=False, isolation_level=None)
        self._index.execute("PRAGMA journal_mode=WAL")
        # no fsync per index commit: the file itself is fsynced, and an index that loses its last commits
        # in a power cut only re-indexes the lines after its stored offset (the crash-safe path above)
        self._index.execute("PRAGMA synchronous=NORMAL")
        self._index.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at INTEGER NOT NULL)")
        columns = [r[1] for r in self._index.execute("PRAGMA table_info(seen)")]
        if "at" not in columns:  # an index written before keys were forgotten: its keys count as written now
            self._index.execute(f"ALTER TABLE seen ADD COLUMN at INTEGER NOT NULL DEFAULT {int(time.time())}")
        self._index.execute("CREATE INDEX IF NOT EXISTS seen_at ON seen (at)")
        self._index.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), "
                            "offset INTEGER NOT NULL)")

    def _catch_up(self, fh: IO[bytes]) -> int:
        row = self._index.execute("SELECT offset FROM state WHERE id = 1").fetchone()
        offset = row[0] if row else 0
        fh.seek(offset)
        at = int(time.time())
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # a torn last line from a crash mid-write: cut off below, rewritten by the delivery
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._index.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (json.loads(raw)["key"], at))
            offset += len(raw)
        return offset

    def _set_offset(self, offset: int) -> None:
        self._index.execute("INSERT INTO state VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET offset = excluded.offset",
                            (offset,))

    def _seen(self, keys: list[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            out.update(k for (k,) in self._index.execute(
                f"SELECT key FROM seen WHERE key IN ({','.join('?' * len(part))})", part))
        return out

    def deliver(self, message: Delivery) -> str:
        result = self.deliver_batch([message])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def deliver_batch(self, messages: Sequence[Delivery]) -> list[str | Exception]:
        """Write every message of the batch not written yet: one append, one fsync, one index commit.

        Returns one answer per message, in order: a receipt, or the exception of a message that could not be
        encoded (it fails alone; the others are written). A write or fsync that fails raises: nothing of the
        batch is then marked, and the lines that did reach the file are found by the next catch-up."""
        results: list[str | Exception] = []
        lines: dict[str, bytes] = {}  # key -> line, first occurrence in the batch
        for m in messages:
            try:
                line = _line(m)
            except (TypeError, ValueError) as exc:
                results.append(DeliveryError(f"cannot write this message as JSON ({exc})"))
                continue
            results.append(f"written to {self.path.name}")
            lines.setdefault(m.dedupe_key, line)
        if not lines:
            return results
        with self._lock, self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._append(fh, lines)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return [r if isinstance(r, Exception) or m.dedupe_key in lines else "already written"
                for m, r in zip(messages, results, strict=True)]

    def _append(self, fh: IO[bytes], lines: dict[str, bytes]) -> None:
        """Under the file lock: catch up, drop keys already written (from `lines`), append the rest."""
        self._index.execute("BEGIN IMMEDIATE")
        try:
            offset = self._catch_up(fh)
            for key in self._seen(list(lines)):
                del lines[key]
            if lines:
                data = b"".join(lines.values())
                fh.seek(0, os.SEEK_END)
                if fh.tell() != offset:  # drop a torn tail so the file stays line-parsable
                    fh.truncate(offset)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                at = int(time.time())
                self._index.executemany("INSERT INTO seen VALUES (?, ?)", [(k, at) for k in lines])
                offset += len(data)
            self._set_offset(offset)
            self._prune()
            self._index.execute("COMMIT")
        except BaseException:
            self._index.execute("ROLLBACK")
            raise

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned >= self.PRUNE_EVERY:
            self._index.execute("DELETE FROM seen WHERE at < ?", (int(now - self.RETAIN),))
            self._pruned = now



class MemoryChannel:
    """Collects messages in memory (tests, drills); idempotent like the others."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.delivered: list[Delivery] = []
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def deliver(self, message: Delivery) -> str:
        with self._lock:
            if message.dedupe_key in self._keys:
                return "duplicate"
            self._keys.add(message.dedupe_key)
            self.delivered.append(message)
        return "kept"


def _line(m: Delivery) -> bytes:
    record = {"key": m.dedupe_key, "kind": m.kind, "to": m.recipient, "incident": m.incident_id,
              "subject": m.subject, "body": m.text, "payload": m.facts, "created_at": m.created_at.isoformat()}
    return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
