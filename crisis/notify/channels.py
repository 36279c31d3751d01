"""Delivery channels. SMTP and chat webhooks plug in by implementing `Channel`.

A channel must treat `message.dedupe_key` as an idempotency key: delivering the same key
twice must reach the recipient once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any, Protocol

from crisis.logs import get_logger
from crisis.store.models import OutboxMessage


class Channel(Protocol):
    name: str

    def deliver(self, message: OutboxMessage) -> None:
        """Deliver or raise; must be idempotent on message.dedupe_key."""


class LogChannel:
    """Writes notifications to the structured log (console in the CLI, a file in services)."""

    name = "log"

    def __init__(self) -> None:
        self.log = get_logger(channel="log")

    def deliver(self, message: OutboxMessage) -> None:
        self.log.info("notification", key=message.dedupe_key, to=message.recipient, subject=message.subject)


class FileChannel:
    """Appends one JSON line per notification; a key already in the file is skipped.

    Check-and-append happens under an exclusive `flock`, re-reading whatever other
    processes appended since, so the CLI and the scheduler may both dispatch safely.
    """

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seen: set[str] = set()
        self._offset = 0

    def _catch_up(self, fh: IO[bytes]) -> None:
        fh.seek(self._offset)
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # a torn last line from a crash mid-write: rewritten by the next delivery
            with contextlib.suppress(ValueError, KeyError):
                self._seen.add(json.loads(raw)["key"])
            self._offset += len(raw)

    def deliver(self, message: OutboxMessage) -> None:
        record: dict[str, Any] = {
            "key": message.dedupe_key, "to": message.recipient, "incident": message.incident_id,
            "subject": message.subject, "body": message.body, "payload": message.payload,
            "created_at": message.created_at.isoformat(),
        }
        with self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._catch_up(fh)
                if message.dedupe_key in self._seen:
                    return
                fh.seek(0, os.SEEK_END)
                if fh.tell() != self._offset:  # drop a torn tail so the file stays line-parsable
                    fh.truncate(self._offset)
                data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                self._offset += len(data)
                self._seen.add(message.dedupe_key)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


class MemoryChannel:
    """Collects messages in memory (tests, drills); idempotent like the others."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.delivered: list[OutboxMessage] = []
        self._keys: set[str] = set()

    def deliver(self, message: OutboxMessage) -> None:
        if message.dedupe_key not in self._keys:
            self._keys.add(message.dedupe_key)
            self.delivered.append(message)
