"""Writing a drill incident's report files: in the replay's own process, or by one forked worker process.

Why a worker: rendering the six Markdown reports and scorecard.json is a sixth of a 100-incident replay's CPU
and needs nothing but the incident's report context (plain data, built by the replay from its database), so
on a machine with a second CPU the files are written there while the replay goes on with the next incidents.
Only an instant replay of many incidents uses it (`crisis drill run` on a folder or a surge, whose terminal
summary is one line per incident): a single incident, or a paced replay, writes and prints as it goes.

The worker is forked (it inherits the loaded code and compiled templates, and starts in milliseconds); on
other systems than Linux (no fork, or macOS where forking a process is unsafe) the files are written in the
replay's process. A write that fails fails the drill, as
before: its error is raised at the next incident's end or when the replay finishes, and the drill's folder is
removed as for any failed run. The files are the same, byte for byte, wherever they are written.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_files(ctx: dict[str, Any], out_dir: Path, formats: tuple[str, ...], notifications: str) -> list[Path]:
    """The incident's reports, scorecard.json and notifications.jsonl; the paths written."""
    from crisis import reports

    written = reports.write_context(ctx, out_dir, formats=formats)
    path = out_dir / "notifications.jsonl"
    path.write_text(notifications, encoding="utf-8")
    return [*written, path]


def _in_worker(ctx: dict[str, Any], out_dir: Path, formats: tuple[str, ...], notifications: str) -> list[Path]:
    return write_files(ctx, out_dir, formats, notifications)  # looked up in the worker (what it inherited)


class Writer:
    """Writes each incident's files in the replay's process, when its scenario ends."""

    def write(self, ctx: dict[str, Any], out_dir: Path, formats: tuple[str, ...], notifications: str) -> list[Path]:
        """Write (or have written) the files; the paths written here (none when a worker writes them)."""
        return write_files(ctx, out_dir, formats, notifications)

    def finish(self, *, failed: bool) -> None:
        """Every write done (raising the first that failed); after a failed replay, what has not started dropped."""


class Background(Writer):
    """One forked worker writing incidents' files in the order they ended."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future[list[Path]]] = []

    def write(self, ctx: dict[str, Any], out_dir: Path, formats: tuple[str, ...], notifications: str) -> list[Path]:
        for done in [f for f in self._pending if f.done()]:
            done.result()  # an earlier incident's write failed: stop the drill now
            self._pending.remove(done)
        if self._pool is None:
            sys.stdout.flush()  # the forked child must not write the parent's buffered output a second time
            sys.stderr.flush()
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        self._pending.append(self._pool.submit(_in_worker, ctx, out_dir, formats, notifications))
        return []

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
def report_writer(background: bool) -> Iterator[Writer]:
    """The replay's writer (a forked worker if `background` and the platform can fork); every write is done
    when the block ends."""
    writer = Background() if background and sys.platform.startswith("linux") else Writer()  # fork is safe there
    try:
        yield writer
    except BaseException:
        writer.finish(failed=True)
        raise
    writer.finish(failed=False)
