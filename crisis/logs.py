"""structlog set-up: every audit event is also one JSON line (to a file by default, or any stream)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import structlog

_configured_stream: IO[str] | None = None


def configure(target: str | Path | IO[str] | None = None) -> None:
    """Send JSON log lines to `target` (a path, a stream, or stderr when None)."""
    global _configured_stream
    if isinstance(target, str | Path):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        stream: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
    else:
        stream = target or sys.stderr
    _configured_stream = stream
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.EventRenamer("msg"),
            structlog.processors.JSONRenderer(ensure_ascii=False, default=str),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**bind: Any) -> Any:
    return structlog.get_logger("crisis").bind(**bind)
