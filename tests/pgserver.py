"""A throwaway PostgreSQL cluster for the test session (initdb + pg_ctl on a private socket directory).

Tests that need it are skipped, with the reason, where the server binaries or psycopg are missing.
As root the cluster runs as the `postgres` user, since initdb refuses to run as root.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def find_initdb() -> Path | None:
    found = shutil.which("initdb")
    candidates = [found] if found else []
    candidates += ["/usr/local/bin/initdb", *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def unavailable() -> str | None:
    """Why a local PostgreSQL cannot be started here, or None when it can."""
    if importlib.util.find_spec("psycopg") is None:
        return "psycopg is not installed"
    if find_initdb() is None:
        return "PostgreSQL server binaries (initdb) not found"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


@contextmanager
def cluster() -> Iterator[Callable[[], str]]:
    """Start a cluster; yield a function that creates a fresh database and returns its SQLAlchemy URL."""
    initdb = find_initdb()
    assert initdb is not None
    bindir = initdb.parent
    root = Path(tempfile.mkdtemp(prefix="crisis-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def run(*cmd: str | Path) -> None:
        subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    started = False
    try:
        run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
            f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "start")
        started = True

        def new_database() -> str:
            import psycopg

            name = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(host=str(root), user="postgres", dbname="postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return f"postgresql+psycopg://postgres@/{name}?host={root}"

        yield new_database
    finally:
        if started:
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
