"""No silent outage: a scheduler whose database is removed, replaced or emptied exits non-zero with one line;
its health (last cycle, next wake-up, pending) is visible from other processes; the single-scheduler lock is
taken on the database's real path."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import ROOT, Cli, crisis_env

from crisis.clock import SystemClock
from crisis.config import Settings, build_service, load_settings
from crisis.notify.channels import MemoryChannel
from crisis.principal import Principal as P
from crisis.scheduler import AlreadyRunning, Deliverer, Runner, background, leader_lock
from crisis.store.db import make_engine
from crisis.store.status import read_health


@pytest.fixture()
def runner(svc, clock):
    deliverer = Deliverer(svc, {name: MemoryChannel() for name in svc.channels}, clock)
    return Runner(svc, clock, deliverer)


def db_file(svc) -> Path:
    return Path(svc.engine.url.database)


def test_a_healthy_cycle_goes_on(svc, runner):
    svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"))
    runner.cycle("startup")
    assert runner.fatal is None


def test_database_file_removed_stops_the_runner(svc, runner):
    runner.cycle("startup")
    path = db_file(svc)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert runner.cycle("sweep") is None
    assert runner.fatal is not None and "no longer exists" in runner.fatal
    assert not path.exists()  # nothing quietly recreated an empty database


def test_database_file_replaced_stops_the_runner(svc, runner, tmp_path):
    runner.cycle("startup")
    path = db_file(svc)
    copy = tmp_path / "copy.db"
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # a restored backup moved over the live file: same path, same content, another file
    os.replace(copy, path)
    runner.cycle("sweep")
    assert runner.fatal is not None and "was replaced" in runner.fatal


def test_database_without_its_schema_stops_the_runner(svc, runner):
    runner.cycle("startup")
    with sqlite3.connect(db_file(svc)) as conn:
        conn.execute("DROP TABLE alembic_version")
    runner.cycle("sweep")
    assert runner.fatal is not None and "lost its schema" in runner.fatal


def test_lock_is_taken_on_the_real_path(tmp_path):
    real = tmp_path / "crisis.db"
    link = tmp_path / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(real)
    eng_real, eng_link = make_engine(f"sqlite:///{real}"), make_engine(f"sqlite:///{link}")
    with leader_lock(eng_real), pytest.raises(AlreadyRunning), leader_lock(eng_link):
        pass
    with leader_lock(eng_link), pytest.raises(AlreadyRunning), leader_lock(eng_real):
        pass


def test_status_shows_a_running_scheduler_then_a_stopped_one(tmp_path, monkeypatch):
    env = crisis_env(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cli = Cli(tmp_path)
    cli("db", "init")
    assert cli.json("scheduler", "status", code=1)["state"] == "never_started"
    svc = build_service(load_settings(), SystemClock())
    inc = svc.open_incident(title="t", category="medical_dispute", principal=P("duty_officer"))
    with background(svc, {name: MemoryChannel() for name in svc.channels}, svc.clock, sweep_seconds=0.2) as r:
        deadline = time.monotonic() + 10
        while r.cycles < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        health = cli.json("scheduler", "status")
        assert health["state"] == "running" and health["healthy"] is True
        assert health["pid"] == os.getpid() and health["pending"] == 2  # the two monitoring tasks' chains
        assert health["next_wake_at"] == min(t.next_escalation_at for t in svc.tasks(inc.id)).isoformat().replace(
            "+00:00", "Z")
        text = cli("scheduler", "status").output
        assert "scheduler: running" in text and "pending escalations: 2" in text
    stopped = cli.json("scheduler", "status", code=1)
    assert stopped["state"] == "stopped" and stopped["stop_reason"] == "stopped"


def test_status_turns_stale_when_cycles_stop(svc, runner, clock):
    from crisis.store import status

    status.record_start(svc.engine, clock.now(), 30.0)
    runner.cycle("startup")
    assert read_health(svc.engine, clock.now()).state == "running"
    assert read_health(svc.engine, clock.now() + timedelta(minutes=5)).state == "stale"  # killed or hung


def test_scheduler_process_exits_nonzero_when_its_database_is_deleted(tmp_path):
    env = {**os.environ, **crisis_env(tmp_path), "PYTHONPATH": str(ROOT)}
    settings = Settings(db_url=env["CRISIS_DB_URL"], playbooks_dir=Path(env["CRISIS_PLAYBOOKS"]),
                        roster_path=Path(env["CRISIS_ROSTER"]), notify_file=Path(env["CRISIS_NOTIFY_FILE"]),
                        log_path=Path(env["CRISIS_LOG"]))
    Cli(tmp_path)("--db", env["CRISIS_DB_URL"], "db", "init")
    svc = build_service(settings, SystemClock())
    path = db_file(svc)
    proc = subprocess.Popen([sys.executable, "-m", "crisis.scheduler", "--sweep", "0.2"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while read_health(svc.engine, svc.clock.now()).cycles < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_health(svc.engine, svc.clock.now()).state == "running"
        svc.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: database file") and "no longer exists" in lines[0], err
    assert not path.exists()  # and nothing recreated an empty database at the path


def test_scheduler_starts_with_an_unwritable_log(tmp_path):
    """The log is a convenience copy: a folder where the log file should be gives one warning, and the
    scheduler runs and stops cleanly."""
    env = {**os.environ, **crisis_env(tmp_path), "PYTHONPATH": str(ROOT)}
    (tmp_path / "crisis.log").mkdir()
    settings = Settings(db_url=env["CRISIS_DB_URL"], playbooks_dir=Path(env["CRISIS_PLAYBOOKS"]),
                        roster_path=Path(env["CRISIS_ROSTER"]), notify_file=Path(env["CRISIS_NOTIFY_FILE"]),
                        log_path=tmp_path / "elsewhere.log")
    svc = build_service(settings, SystemClock())
    proc = subprocess.Popen([sys.executable, "-m", "crisis.scheduler", "--sweep", "0.2"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while read_health(svc.engine, svc.clock.now()).cycles < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read_health(svc.engine, svc.clock.now()).state == "running"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: cannot open the log file"), err
    assert read_health(svc.engine, svc.clock.now()).state == "stopped"
