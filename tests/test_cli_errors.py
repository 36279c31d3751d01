"""Hostile and broken inputs at the command line: each gives one error line and exit status 2 (JSON under
--json), never a traceback; a log file that cannot be written never fails a committed command."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from helpers import DRILLS_DIR, Cli, crisis_env

from crisis.store import db

HUGE = "99999999999999999999"  # beyond 64 bits


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> Cli:
    shutil.copyfile(migrated_db, tmp_path / "crisis.db")  # `crisis db init`
    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CRISIS_USER", raising=False)
    return Cli(tmp_path)


def one_error_line(result, *needles: str) -> str:
    """The run printed exactly one line, `error: …`, containing every needle, and no traceback."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def opened(cli: Cli) -> int:
    return cli.json("open", "--title", "网传候诊5小时", "--category", "medical_dispute")["incident"]["id"]


# ------------------------------------------------------------------------------------------------- ids and values
@pytest.mark.parametrize("args", [("show", HUGE), ("task", "done", HUGE), ("ack", HUGE), ("task", "list", HUGE),
                                  ("statement", "release", HUGE)])
def test_ids_beyond_64_bits(cli, args):
    opened(cli)
    one_error_line(cli(*args, code=2), "number too large")
    err = cli.json(*args, code=2)
    assert err["error"]["code"] == "invalid" and "number too large" in err["error"]["message"]


def test_usage_errors_are_json_under_json(cli):
    err = cli.json("show", "abc", code=2)["error"]  # the API's shape and code for a value it refuses
    assert err["code"] == "invalid" and err["field"] == "incident_id" and "incident_id" in err["message"]
    assert cli.json("nope", code=2)["error"]["code"] == "invalid"


def test_user_text_in_an_error_is_not_markup(cli):
    result = cli("open", "--title", "t", "--category", "[/][bold]x", code=2)
    one_error_line(result, "[/][bold]x")


def test_a_blocked_move_names_the_open_tasks_and_the_shells_way_on(cli):
    iid = opened(cli)
    one_error_line(cli("fire", str(iid), "report", code=2), "required task(s) still open: compile_report",
                   'leadership may override with a reason (--override --reason "...")')
    err = cli.json("fire", str(iid), "report", code=2)["error"]  # the API's body: the tasks as data, no CLI flags
    assert err["code"] == "conflict" and err["tasks"] == ["compile_report"] and "--override" not in err["message"]


@pytest.mark.parametrize("speed", ["nan", "inf", "-1", "0"])
def test_drill_speed_must_be_a_positive_number(cli, tmp_path, speed):
    out = tmp_path / "out"
    one_error_line(cli("drill", "run", str(DRILLS_DIR / "medical-dispute-viral.yaml"), "--speed", speed,
                       "--out", str(out), code=2), "--speed")
    err = cli.json("drill", "run", str(DRILLS_DIR / "medical-dispute-viral.yaml"), "--speed", speed, code=2)
    assert err["error"]["code"] == "invalid" and err["error"]["field"] == "--speed"
    assert err["error"]["message"].startswith("must be a number greater than zero")
    assert not out.exists()


@pytest.mark.parametrize("sweep", ["nan", "inf", "0.0001", "-1"])
def test_scheduler_sweep_is_bounded(cli, sweep):
    one_error_line(cli("scheduler", "run", "--sweep", sweep, code=2), "--sweep", "between")


# ------------------------------------------------------------------------------------------------- the log file
@pytest.mark.parametrize("log", ["a-folder", "/dev/full", "a-file/below-it.log"])
def test_an_unwritable_log_never_fails_a_committed_command(cli, tmp_path, monkeypatch, log):
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("CRISIS_LOG", str(tmp_path / log) if not log.startswith("/") else log)
    result = cli("open", "--title", "t", "--category", "medical_dispute", "--json")
    inc = json.loads(result.stdout)["incident"]
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "log" in warnings[0], result.stderr
    task = cli.json("task", "list", str(inc["id"]))[0]
    assert cli("task", "done", str(task["id"]), "--by", "info_head").exit_code == 0
    assert cli.json("show", str(inc["id"]))["tasks"][0]["status"] == "done"  # committed


# ------------------------------------------------------------------------------------------------- the database
def test_unusable_database_files(cli, tmp_path):
    text = tmp_path / "text.db"
    text.write_text("hello, not a database\n")
    one_error_line(cli("--db", f"sqlite:///{text}", "list", code=2), "cannot use database", "not a database")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    one_error_line(cli("--db", f"sqlite:///{folder}", "list", code=2), "cannot use database", "cannot open")
    err = cli.json("--db", f"sqlite:///{text}/below.db", "list", code=2)  # commands never create a database
    assert err["error"]["code"] == "unavailable" and f"no crisis database at {text}/below.db" in err["error"]["message"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_database_file(cli, tmp_path):
    opened(cli)
    path = tmp_path / "crisis.db"
    path.chmod(0)
    try:
        one_error_line(cli("list", code=2), "cannot use database")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(("url", "needle"), [
    ("nonsense", "cannot parse database URL"),
    ("foo://x", "unsupported database 'foo'"),
    ("mysql://u:secret@127.0.0.1:1/x", "unsupported database 'mysql'"),
    ("postgresql+psycopg://u:secret@127.0.0.1:1/x", "cannot reach database"),
    ("postgresql+nosuchdriver://u@127.0.0.1:1/x", "cannot use database URL"),
])
def test_bad_or_unreachable_database_urls(cli, url, needle):
    line = one_error_line(cli("--db", url, "list", code=2), needle)
    assert "secret" not in line  # passwords never shown
    assert cli.json("--db", url, "list", code=2)["error"]["code"] in ("invalid", "unavailable")


def _hold_write_lock(path: Path, ready: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE incident SET title = title")
    ready.set()
    release.wait(30)
    conn.execute("ROLLBACK")
    conn.close()


def test_readers_do_not_wait_for_a_writer_and_a_busy_writer_gets_one_line(cli, tmp_path, monkeypatch):
    inc = opened(cli)
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 0.2)  # what a writer waits before "busy" (30 s in production)
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(tmp_path / "crisis.db", ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        # readers use read transactions: no write lock, so they are not refused while another process writes
        assert [i["id"] for i in cli.json("list")] == [inc]
        assert cli.json("show", str(inc))["incident"]["id"] == inc
        # a writer cannot get the lock in time: one clear line, exit 2
        one_error_line(cli("fire", str(inc), "report", "--override", "--reason", "x", "--by", "president", code=2),
                       "database busy, try again in a moment")
        busy = cli.json("open", "--title", "t", "--category", "medical_dispute", code=2)["error"]
        assert busy["code"] == "unavailable" and busy["retry_after"] == 1
    finally:
        release.set()
        holder.join(10)
    assert cli.json("show", str(inc))["incident"]["stage"] == "monitoring"  # nothing changed


# ------------------------------------------------------------------------------------------------- output paths
def test_unwritable_out_paths(cli, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    one_error_line(cli("drill", "run", str(DRILLS_DIR / "medical-dispute-viral.yaml"), "--out", str(afile / "out"),
                       code=2), "cannot use", "Not a directory")
    inc = opened(cli)
    err = cli.json("report", str(inc), "--out", str(afile / "reports"), code=2)
    assert err["error"]["code"] == "invalid" and "Not a directory" in err["error"]["message"]


def test_an_unexpected_failure_is_one_line_and_its_traceback_goes_to_the_log(cli, tmp_path, monkeypatch):
    from crisis import views

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    inc = str(opened(cli))
    monkeypatch.setattr(views, "incident_detail", broken)  # stands in for a bug anywhere below the CLI
    one_error_line(cli("show", inc, code=2), "internal error", "RuntimeError: boom")
    err = cli.json("show", inc, code=2)["error"]
    assert err["code"] == "internal" and "RuntimeError: boom" in err["message"]
    logged = [json.loads(ln) for ln in (tmp_path / "crisis.log").read_text("utf-8").splitlines()]
    assert any(e["msg"] == "internal_error" and "RuntimeError: boom" in e.get("exception", "") for e in logged)


# ------------------------------------------------------------------------------------------------- notifications
def test_a_failing_channel_is_reported_to_whoever_acted(cli, tmp_path, monkeypatch):
    (tmp_path / "notify-folder").mkdir()
    monkeypatch.setenv("CRISIS_NOTIFY_FILE", str(tmp_path / "notify-folder"))  # the file channel cannot write
    result = cli("open", "--title", "t", "--category", "medical_dispute", "--json")
    inc = json.loads(result.stdout)["incident"]  # committed, exit 0, stdout still pure JSON
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    tasks = cli.json("task", "list", str(inc["id"]))
    assignees = {t["assignee"] for t in tasks}
    assert len(warnings) == len(tasks)  # one per failed notification (task assigned), none for the log channel
    assert all("via file failed" in w and "Is a directory" in w for w in warnings)
    assert {w.split("notification to ")[1].split(" ")[0] for w in warnings} == assignees


def test_a_channel_that_cannot_be_set_up_never_fails_the_command(cli, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("CRISIS_NOTIFY_FILE", str(tmp_path / "a-file" / "n.jsonl"))
    result = cli("open", "--title", "t", "--category", "medical_dispute")
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "notifications not delivered now" in warnings[0]
    monkeypatch.setenv("CRISIS_NOTIFY_FILE", str(tmp_path / "n.jsonl"))
    assert len(cli.json("list")) == 1  # the incident was committed


@pytest.mark.parametrize("at", ["0001-01-01T00:00", "9999-12-31T23:59", "1900-01-01T00:00"])
def test_implausible_dates_at_the_shell(cli, at):
    opened(cli)
    one_error_line(cli("oncall", "show", "--at", at, code=2), "--at", "must lie between 1971 and 2999")
