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

    def __init__(self) -> None:
        self.log = get_logger(channel="log")

    def deliver(self, message: Delivery) -> str:
        self.log.info("notification", key=message.dedupe_key, to=message.recipient, subject=message.subject)
        return "logged"


class FileChannel:
    """Appends one JSON line per notification; a key already written is skipped.

    The keys written live in a small SQLite index beside the file (`<file>.idx`) with the byte offset up to
    which the file is indexed, so a start never re-reads history: each delivery, under an exclusive `flock`,
    indexes only what was appended after that offset (by another process, or by one killed between its write
    and its index update), then checks and appends. Crash-safe in both orders, exact across processes.
    """

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index = sqlite3.connect(str(self.path) + ".idx", check_same_thread=False, isolation_level=None)
        self._index.execute("PRAGMA journal_mode=WAL")
        # no fsync per index commit: the file itself is fsynced, and an index that loses its last commits
        # in a power cut only re-indexes the lines after its stored offset (the crash-safe path above)
        self._index.execute("PRAGMA synchronous=NORMAL")
        self._index.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY)")
        self._index.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), "
                            "offset INTEGER NOT NULL)")

    def _catch_up(self, fh: IO[bytes]) -> int:
        row = self._index.execute("SELECT offset FROM state WHERE id = 1").fetchone()
        offset = row[0] if row else 0
        fh.seek(offset)
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # a torn last line from a crash mid-write: cut off below, rewritten by the delivery
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self._index.execute("INSERT OR IGNORE INTO seen VALUES (?)", (json.loads(raw)["key"],))
            offset += len(raw)
        return offset

    def _set_offset(self, offset: int) -> None:
        self._index.execute("INSERT INTO state VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET offset = excluded.offset",
                            (offset,))

    def deliver(self, message: Delivery) -> str:
        record = {"key": message.dedupe_key, "kind": message.kind, "to": message.recipient,
                  "incident": message.incident_id, "subject": message.subject, "body": message.text,
                  "payload": message.facts, "created_at": message.created_at.isoformat()}
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock, self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._index.execute("BEGIN IMMEDIATE")
                try:
                    offset = self._catch_up(fh)
                    if self._index.execute("SELECT 1 FROM seen WHERE key = ?", (message.dedupe_key,)).fetchone():
                        self._set_offset(offset)
                        self._index.execute("COMMIT")
                        return "already written"
                    fh.seek(0, os.SEEK_END)
                    if fh.tell() != offset:  # drop a torn tail so the file stays line-parsable
                        fh.truncate(offset)
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                    self._index.execute("INSERT INTO seen VALUES (?)", (message.dedupe_key,))
                    self._set_offset(offset + len(data))
                    self._index.execute("COMMIT")
                except BaseException:
                    self._index.execute("ROLLBACK")
                    raise
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return f"written to {self.path.name}"


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
