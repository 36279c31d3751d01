"""structlog set-up: every audit event is also one JSON line (to a file by default, or any stream).

The database timeline is the record; the log file is a convenience copy. So the log can never fail a
command that has committed: a log path that cannot be opened, or a write that fails later (disk full,
file removed under us), gives one warning on stderr and the process goes on without the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Sequence
from json import encoder as json_encoder
from pathlib import Path
from typing import IO, Any

# structlog looks for rich when it is imported, for its console renderer's tracebacks; with rich installed (the
# CLI's tables) that loads rich.traceback, rich.pretty and pygments (~15 ms of every command's start-up) although
# these JSON lines never use them (format_exc_info renders tracebacks as plain text). Hide those two modules
# while structlog loads, unless something already imported them; the lines written are the same.
_HIDDEN = [name for name in ("rich.traceback", "rich.pretty") if name not in sys.modules]
sys.modules.update(dict.fromkeys(_HIDDEN))  # type: ignore[arg-type]  # None: "import fails" (ImportError)
try:
    import structlog
finally:
    for _name in _HIDDEN:
        if sys.modules.get(_name, 0) is None:
            del sys.modules[_name]

_configured_stream: IO[str] | None = None
# What `json.dumps(d, ensure_ascii=False, default=str)` builds anew on every call (the JSON renderer's settings): one
# encoder made once writes the same text.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
_C_ENCODE = json_encoder.c_make_encoder and json_encoder.c_make_encoder(
    None, str, json_encoder.encode_basestring, None, ": ", ", ", False, False, True)  # the same, C only (see _encode)


def _encode(d: dict[str, Any]) -> str:
    """`_ENCODER.encode(d)` straight from the C encoder, made once (the encoder makes one per call); without its
    circular-reference markers, so a value containing itself ends in RecursionError, and then the encoder says
    what json.dumps says."""
    if _C_ENCODE is not None:
        try:
            return "".join(_C_ENCODE(d, 0))
        except RecursionError:
            pass
    return _ENCODER.encode(d)
_chain: list[Any] | None = None  # the processors `configure` installed (the audit fast path renders exactly them)
_chain_items: tuple[Any, ...] = ()  # and what it held (structlog.testing.capture_logs swaps the list's contents)


def _render(event_dict: dict[str, Any], **_kw: Any) -> str:
    return _encode(event_dict)


class _Guarded(io.TextIOBase):
    """A text stream whose write errors become one warning on stderr, after which writes are dropped."""

    def __init__(self, stream: IO[str] | None, name: str) -> None:
        self._stream, self._name = stream, name

    def _fail(self, exc: BaseException) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            with contextlib.suppress(OSError, ValueError):
                stream.close()  # drop what is still buffered, so closing at exit cannot fail again
            _warn(f"cannot write the log {self._name} ({_reason(exc)}); going on without it")

    def write(self, s: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(s)
            except (OSError, ValueError) as exc:  # ValueError: the stream was closed
                self._fail(exc)
        return len(s)

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._fail(exc)

    def writable(self) -> bool:
        return True


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def _warn(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # not even stderr: nothing left to tell
        print(f"warning: {message}; the database timeline is the record", file=sys.stderr, flush=True)


def configure(target: str | Path | IO[str] | None = None) -> None:
    """Send JSON log lines to `target` (a path, a stream, or stderr when None)."""
    global _configured_stream
    if isinstance(target, str | Path):
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            opened: IO[str] | None = open(target, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
        except OSError as exc:
            _warn(f"cannot open the log file {target} ({_reason(exc)}); going on without it")
            opened = None
        stream: IO[str] = _Guarded(opened, f"file {target}")  # type: ignore[assignment]
    else:
        stream = target or sys.stderr
    global _chain, _chain_items
    _configured_stream = stream
    _chain = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.EventRenamer("msg"),
        structlog.processors.format_exc_info,  # log.exception(): the traceback as text in "exception"
        structlog.processors.JSONRenderer(serializer=_render),  # json.dumps(…, ensure_ascii=False, default=str)
    ]
    _chain_items = tuple(_chain)
    structlog.configure(processors=_chain, logger_factory=structlog.PrintLoggerFactory(file=stream),
                        cache_logger_on_first_use=False)


def info_lines(log: Any, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """`log.info(event, **kw)` for each of `events`, in order: a command's audit lines after its commit.

    When `log` runs the chain `configure` installed (and binds nothing), the lines are rendered here as that chain
    renders them (the same keys in the same order: the call's, context variables', "level", then "msg"; the same
    JSON) and written in one write: structlog's processor chain and a flushed print per line cost ~15 us a line,
    about a tenth of a transition. Any other logger (another configuration, a test's capture) gets the calls."""
    if not events:
        return
    if (_chain is None or getattr(log, "_processors", None) is not _chain or tuple(_chain) != _chain_items
            or getattr(log, "_context", True) or any("exc_info" in kw or "event" in kw for _, kw in events)):
        for event, kw in events:
            log.info(event, **kw)
        return
    bound = structlog.contextvars.get_contextvars()  # what merge_contextvars adds to each line
    lines = []
    for event, kw in events:
        d = dict(kw)
        d["event"] = event
        for key, value in bound.items():
            d.setdefault(key, value)
        d["level"] = "info"
        d["msg"] = d.pop("event")
        lines.append(_encode(d))
    log._logger.msg("\n".join(lines))  # the PrintLogger: its lock, its stream, one print and flush


def get_logger(**bind: Any) -> Any:
    return structlog.get_logger("crisis").bind(**bind)
