"""A many-incident drill's report files written by a forked worker while the replay goes on: the same bytes as
written by the replay's own process, and a write that fails still fails the drill and leaves nothing behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import DRILLS_DIR, Cli, crisis_env

from crisis.drill import writer

SCENARIO = DRILLS_DIR / "medical-dispute-viral.yaml"


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name, value in crisis_env(tmp_path, db=False).items():
        monkeypatch.setenv(name, value)
    return Cli(tmp_path)


def _record_pids(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Note which process writes each incident's files (patched before the fork: the worker inherits it)."""
    real = writer.write_files

    def noted(*args, **kwargs):
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "write_files", noted)


def _files(folder: Path) -> dict[str, str]:
    """Every file under the folder, its run-specific text (folder, run id, wall time) made neutral."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            text = p.read_text("utf-8").replace(str(folder), "OUT")
            text = re.sub(r'"wall_seconds": [0-9.e-]+|(instant|即时)\S* [0-9.]+ |\d{8}-\d{6}-\d{6}', "W", text)
            out[str(p.relative_to(folder))] = text
    return out


def test_the_worker_writes_what_the_replay_process_writes(cli, tmp_path, monkeypatch):
    runs = {}
    for where in ("worker", "here"):
        if where == "here":  # no fork: the files are written by the replay's process, as for a single incident
            monkeypatch.setattr(writer.sys, "platform", "win32")
        pids = tmp_path / f"{where}.pids"
        _record_pids(monkeypatch, pids)
        out = tmp_path / where
        cli("drill", "run", *[str(SCENARIO)] * 5, "--out", str(out), "--db", f"sqlite:///{tmp_path / where}.db")
        runs[where] = (_files(out), set(pids.read_text().split()))
    (worker_files, worker_pids), (here_files, here_pids) = runs["worker"], runs["here"]
    assert len(worker_files) == 5 * 8 + 1 and worker_files == here_files  # 8 per incident, and audit.log
    assert here_pids == {str(os.getpid())} and str(os.getpid()) not in worker_pids
    assert len(worker_pids) == writer.WORKERS  # 5 incidents: each worker took its turn


def test_a_failed_write_in_the_worker_fails_the_drill_and_leaves_nothing(cli, tmp_path, monkeypatch):
    real = writer.write_files

    def full_disk(ctx, out_dir, *args):
        if out_dir.name.endswith("-3"):
            raise OSError(28, "No space left on device")
        return real(ctx, out_dir, *args)

    monkeypatch.setattr(writer, "write_files", full_disk)
    out, db = tmp_path / "out", tmp_path / "store" / "drills"
    result = cli("drill", "run", *[str(SCENARIO)] * 5, "--out", str(out), code=2)
    assert "No space left on device" in result.output
    assert not out.exists() and not list(db.glob("*.db*"))  # as for any failed run: its folder and database go


def test_an_incident_scored_from_its_rows_has_the_scorecard_the_service_reads(tmp_path):
    """What the report worker scores (the rows read at the incident's end) is what `scorecard.build` reads through
    crisis.views, for every shipped scenario (escalations, statements, rejected actions, reopens, on-call)."""
    from crisis.drill.cli import scenario_files
    from crisis.drill.runner import run_drills
    from crisis.drill.scenario import load_scenario
    from crisis.playbook import load_playbooks
    from crisis.roster import load_roster
    from crisis.store.db import ROOT, make_engine

    scenarios = [load_scenario(p) for p in scenario_files([DRILLS_DIR])]
    roster = load_roster(scenarios[0].roster_path() or ROOT / "examples" / "roster.yaml")
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    seen = []

    def check(result):
        expect = result.loaded.scenario.expectations(result.name)
        card = writer.card_of(writer.read_rows(engine, result.incident_id), expect, roster)
        seen.append(result.incident_id)
        assert card == result.scorecard and card["tasks"] and card["timeline"]

    run_drills([(s, timedelta(0)) for s in scenarios], engine=engine, playbooks=load_playbooks(ROOT / "playbooks"),
               roster=roster, on_finish=check)
    assert len(seen) == len(scenarios) >= 6


def test_a_worker_killed_mid_drill_fails_the_drill_instead_of_hanging_it(cli, tmp_path, monkeypatch):
    real = writer.write_files

    def killed(ctx, out_dir, *args):
        if out_dir.name.endswith("-3"):
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies as under the OOM killer: not a word back
        return real(ctx, out_dir, *args)

    monkeypatch.setattr(writer, "write_files", killed)
    out = tmp_path / "out"
    result = cli("drill", "run", *[str(SCENARIO)] * 5, "--out", str(out), code=2)
    assert "error: internal error (RuntimeError: the drill's report worker ended without a word)" in result.output
    assert not out.exists()
    assert not multiprocessing.active_children()  # every worker joined: none left running or a zombie


def test_a_refused_fork_leaves_no_worker_running(monkeypatch):
    """The workers are forked when the replay starts: if the second fork is refused, the first is stopped too and
    the error is the drill's."""
    from crisis.playbook import load_playbooks
    from crisis.roster import load_roster
    from crisis.store.db import ROOT

    started = []
    real_start = multiprocessing.get_context("fork").Process.start

    def start(self):
        if started:
            raise OSError(11, "Resource temporarily unavailable")
        started.append(self)
        return real_start(self)

    monkeypatch.setattr(multiprocessing.get_context("fork").Process, "start", start)
    monkeypatch.setattr(writer, "WORKERS", 2)
    with pytest.raises(OSError, match="Resource temporarily unavailable"):
        writer.Background(load_roster(ROOT / "examples" / "roster.yaml"), load_playbooks(ROOT / "playbooks"))
    assert len(started) == 1 and not started[0].is_alive() and not multiprocessing.active_children()


def test_many_incidents_return_whole_documents_with_json_and_their_summaries_without(cli, tmp_path):
    """With --json every incident's whole document is printed (what its scorecard.json holds); a replay printing
    one line per incident gets back only each document's summary from the workers, and returns those."""
    import io

    from rich.console import Console

    from crisis import jsonout
    from crisis.clock import SystemClock
    from crisis.drill import cli as drill_cli
    from crisis.drill.scenario import load_scenario
    from crisis.playbook import load_playbooks
    from crisis.roster import load_roster
    from crisis.store.db import ROOT

    def on_disk(out: Path) -> list[dict]:
        docs = [json.loads(p.read_text("utf-8")) for p in out.glob("*/scorecard.json")]
        return sorted(docs, key=lambda d: d["incident"]["id"])

    out = tmp_path / "json"
    printed = cli.json("drill", "run", *[str(SCENARIO)] * 4, "--out", str(out), "--db", f"sqlite:///{tmp_path}/j.db")
    assert printed == on_disk(out) and printed[0]["timeline"]  # the same values too (times in Z)

    loaded = load_scenario(SCENARIO)
    out = tmp_path / "lines"
    text = io.StringIO()
    cards = drill_cli.replay([(loaded, timedelta(minutes=7 * i)) for i in range(4)], load_playbooks(ROOT / "playbooks"),
                             load_roster(ROOT / "examples" / "roster.yaml"), run_id="r", out_dir=out,
                             db_url=f"sqlite:///{tmp_path}/l.db", speed=None, tz="Asia/Shanghai", as_json=False,
                             console=Console(file=text, width=200), wall=SystemClock())
    assert jsonout.encode(cards) == [writer.summary(doc) for doc in on_disk(out)]
    assert set(cards[0]) == set(writer.SUMMARY_KEYS) and "timeline" not in cards[0]
    assert text.getvalue().count("\n#") + text.getvalue().startswith("#") == 4  # one line each, from the summaries
