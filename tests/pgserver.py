"""A throwaway PostgreSQL cluster for the test session (initdb + pg_ctl on a private socket directory).

`pg_cluster` (session-scoped) starts one cluster the first time a test asks for it and yields a function that
creates a fresh, empty database and returns its SQLAlchemy URL; the cluster is stopped and its directory removed
at the end of the session. Tests that use it are skipped, with the reason, where the server binaries or psycopg
are missing. As root the cluster runs as the `postgres` user, since initdb refuses to run as root.

Never leaves a server behind: every step has a timeout, a half-started server is stopped too, and a watchdog
process stops the cluster and removes its files if the test process dies without cleaning up (even SIGKILL).

The server runs with TimeZone = Asia/Shanghai, so a timestamp that is converted with the server's zone
instead of stored as UTC shows up as an eight-hour error rather than passing by luck.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER_TIMEZONE = "Asia/Shanghai"
_TIMEOUT = 120  # seconds for initdb / pg_ctl

# Runs in its own session; blocks until the test process's end of the pipe closes (however it dies),
# then stops the cluster at once and removes its directory. Harmless if the cluster is already gone.
_WATCHDOG = """
import shutil, subprocess, sys
pg_ctl, data, root, *as_user = sys.argv[1:]
sys.stdin.read()
if __import__("os").path.exists(data + "/postmaster.pid"):
    subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"],
                   capture_output=True, timeout=60, check=False)
shutil.rmtree(root, ignore_errors=True)
"""


def find_initdb() -> Path | None:
    found = shutil.which("initdb")
    candidates = [found] if found else []
    candidates += ["/usr/local/bin/initdb", *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    return next((Path(c).resolve() for c in candidates if c and Path(c).is_file()), None)


def unavailable() -> str | None:
    """Why a local PostgreSQL cannot be started here, or None when it can."""
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed (pip install -e '.[dev]')"
    initdb = find_initdb()
    if initdb is None:
        return "PostgreSQL server binaries not found (no initdb on PATH, in /usr/local/bin or /usr/lib/postgresql)"
    if not (initdb.parent / "pg_ctl").is_file():
        return f"pg_ctl not found next to {initdb}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is not available to drop to the 'postgres' user"
    return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@contextmanager
def cluster() -> Iterator[Callable[[], str]]:
    """Start a cluster; yield a function that creates a fresh database and returns its SQLAlchemy URL."""
    initdb = find_initdb()
    assert initdb is not None, unavailable()
    bindir = initdb.parent
    pg_ctl = str(bindir / "pg_ctl")
    # A unix socket path must stay under ~100 bytes: keep the directory short even if TMPDIR is long.
    base = None if len(tempfile.gettempdir()) < 40 else "/tmp"
    root = Path(tempfile.mkdtemp(prefix="crisis-pg-", dir=base))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def run(*cmd: str | Path) -> None:
        try:
            subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, timeout=_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"{Path(str(cmd[0])).name} failed (exit {exc.returncode}):\n"
                               f"{exc.stderr.decode(errors='replace')}\n{exc.stdout.decode(errors='replace')}\n"
                               f"server log:\n{_tail(log)}") from None
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{Path(str(cmd[0])).name} timed out after {_TIMEOUT}s; server log:\n"
                               f"{_tail(log)}") from None

    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, pg_ctl, str(data), str(root), *as_user],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        run(initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale", "C")
        options = (f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off -c max_connections=100 -c timezone={SERVER_TIMEZONE}")
        run(pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")

        def new_database() -> str:
            import psycopg

            name = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(host=str(root), user="postgres", dbname="postgres", autocommit=True,
                                 connect_timeout=10) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return f"postgresql+psycopg://postgres@/{name}?host={root}"

        yield new_database
    finally:
        # Also after a failed or timed-out start: pg_ctl may have launched a server it did not wait for.
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):  # if this hangs, the watchdog tries again
                subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
                               capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
        if watchdog.stdin is not None:
            watchdog.stdin.close()  # nothing left for it to do; it exits
        try:
            watchdog.wait(timeout=90)
        except subprocess.TimeoutExpired:
            watchdog.kill()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Callable[[], str]]:
    """One PostgreSQL cluster per test session; call the yielded function for a fresh database URL."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no PostgreSQL here: {reason}")
    with cluster() as new_database:
        yield new_database


@pytest.fixture()
def pg_url(pg_cluster: Callable[[], str]) -> str:
    """A fresh, empty database (no schema yet) on the session's cluster."""
    return pg_cluster()
