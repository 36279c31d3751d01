"""Delivery channels. SMTP and chat webhooks plug in by implementing `Channel`.

A channel must treat `message.dedupe_key` as an idempotency key: delivering the same key
twice must reach the recipient once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

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
    """Appends one JSON line per notification; keys already in the file are skipped (fsync'd)."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seen: set[str] | None = None

    def _keys(self) -> set[str]:
        if self._seen is None:
            self._seen = set()
            if self.path.exists():
                with self.path.open(encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            self._seen.add(json.loads(line)["key"])
                        except (ValueError, KeyError):
                            continue  # a torn last line from a crash mid-write
        return self._seen

    def deliver(self, message: OutboxMessage) -> None:
        keys = self._keys()
        if message.dedupe_key in keys:
            return
        record: dict[str, Any] = {
            "key": message.dedupe_key, "to": message.recipient, "incident": message.incident_id,
            "subject": message.subject, "body": message.body, "payload": message.payload,
            "created_at": message.created_at.isoformat(),
        }
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        keys.add(message.dedupe_key)


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
