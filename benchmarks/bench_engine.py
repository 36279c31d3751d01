"""Benchmarks: persisted transitions per second, raw SQLite commit rate (the drill: bench_drill.py).

Run: python3 dev.py bench   (or .venv/bin/python benchmarks/bench_engine.py)
Prints its figures; nothing here is asserted (timing targets don't belong in unit tests).
"""

from __future__ import annotations

import argparse
import io
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from crisis import logs
from crisis.clock import VirtualClock
from crisis.drill.scenario import load_scenario
from crisis.playbook import load_playbooks
from crisis.principal import Principal as P
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.store.db import ROOT, make_engine
from crisis.store.migrate import create_db

SCENARIO = ROOT / "examples" / "drills" / "medical-dispute-viral.yaml"
PATH = ["report", "assess", "respond", "media", "skip_onsite", "close"]


def bench_transitions(tmp: Path, incidents: int) -> float:
    engine = make_engine(f"sqlite:///{tmp / 'fsm.db'}")
    create_db(engine)
    clock = VirtualClock(load_scenario(SCENARIO).scenario.start)
    svc = CrisisService(engine, load_playbooks(ROOT / "playbooks"), load_roster(ROOT / "examples" / "roster.yaml"),
                        clock)
    ids = [svc.open_incident(title=f"bench {i}", category="medical_dispute", principal=P("duty_officer")).id
           for i in range(incidents)]
    n = 0
    t0 = time.perf_counter()
    for iid in ids:
        assert iid is not None
        for trig in PATH:
            clock.advance(timedelta(minutes=1))
            svc.fire(iid, trig, principal=P("president"), decision="activate" if trig == "assess" else None,
                     override=True, reason="benchmark")
            n += 1
    wall = time.perf_counter() - t0
    rate = n / wall
    print(f"transitions persisted on SQLite: {n} in {wall:.3f} s = {rate:,.0f} /s "
          f"(each one transaction: stage, audit events, waived/new tasks, outbox rows)")
    return rate


def bench_raw_sqlite(tmp: Path, rows: int) -> float:
    con = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT, payload TEXT)")
    t0 = time.perf_counter()
    for i in range(rows):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (at, payload) VALUES (?, ?)", ("2026-01-01T00:00:00", f"row {i}"))
        con.execute("COMMIT")
    wall = time.perf_counter() - t0
    con.close()
    rate = rows / wall
    print(f"raw SQLite insert+commit (same pragmas: WAL, synchronous=NORMAL): {rows} in {wall:.3f} s = {rate:,.0f} /s")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fsm-incidents", type=int, default=100, help="incidents driven through all stages")
    ap.add_argument("--raw-rows", type=int, default=5000)
    args = ap.parse_args()
    logs.configure(io.StringIO())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        fsm = bench_transitions(tmp, args.fsm_incidents)
        raw = bench_raw_sqlite(tmp, args.raw_rows)
        print(f"ratio transitions / raw commits: {fsm / raw:.3f}")


if __name__ == "__main__":
    main()
