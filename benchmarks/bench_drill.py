"""Benchmark: drill replay speed, measured the way `crisis drill run` works.

Run: python3 dev.py bench --only drill   (or .venv/bin/python benchmarks/bench_drill.py [--incidents 100] [--runs 3])

What the clock covers, from the start of the replay to the last file written: making the drill's own
database (schema migrations included; an instant replay runs it in memory and writes its file at the end, as
`crisis drill run` does), the replay under the virtual clock (scripted steps, escalations,
notification delivery), and for every incident at its scenario's end its scorecard, its six Markdown reports,
scorecard.json, notifications.jsonl, audit.log and the terminal summary (rendered into a buffer at the
width `crisis drill run > file` uses).
Not covered: loading and cross-checking the scenario, playbooks and roster (done once before), interpreter
start-up. The surge is the shipped scenario replayed `incidents` times, each copy opened 7 minutes after the
previous one, all on one clock and one database (72 h each, 83.5 h span for 100).

Wall time and CPU time are both printed: on a shared machine wall time also counts the time other processes
held the CPU. The surge is replayed three times (--runs) and the median run is reported with every run's wall
time, since a shared machine's speed moves between runs. CPU time is this process's plus that of the worker
processes scoring a many-incident replay's incidents and writing their report files while the replay goes on
(crisis.drill.writer): on two free CPUs most of that work is off the wall time.
The breakdown (CPU seconds, exclusive) splits the replay loop (by what it calls) from scoring and writing.
"""

from __future__ import annotations

import argparse
import collections
import functools
import io
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from crisis import logs
from crisis.clock import SystemClock
from crisis.console import FILE_WIDTH
from crisis.drill import cli as drill_cli
from crisis.drill import runner, writer
from crisis.drill.scenario import load_scenario
from crisis.notify.dispatch import Dispatcher
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.store.db import ROOT

SCENARIO = ROOT / "examples" / "drills" / "medical-dispute-viral.yaml"
STAGGER = timedelta(minutes=7)


@contextmanager
def _timed(parts: dict[str, float], where: list[tuple[Any, str, str]]) -> Iterator[None]:
    """Accumulate the CPU time spent in each named function (module or class attribute) while the block runs."""
    saved = []
    for owner, attr, label in where:
        fn = getattr(owner, attr)
        own = attr in vars(owner)  # a class may inherit it: then the wrapper is removed, not stored over it

        def wrapper(*a: Any, _fn: Callable[..., Any] = fn, _label: str = label, **k: Any) -> Any:
            t = time.thread_time()
            try:
                return _fn(*a, **k)
            finally:
                parts[_label] += time.thread_time() - t

        saved.append((owner, attr, fn if own else None))
        setattr(owner, attr, functools.wraps(fn)(wrapper))
    try:
        yield
    finally:
        for owner, attr, fn in saved:
            if fn is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, fn)


def replay(tmp: Path, incidents: int, name: str) -> dict[str, Any]:
    """One replay of `incidents` staggered copies through the CLI's replay-and-write path; its figures."""
    loaded = load_scenario(SCENARIO)
    playbooks = load_playbooks(ROOT / "playbooks")
    roster = load_roster(loaded.roster_path() or ROOT / "examples" / "roster.yaml")
    out, db = tmp / name, tmp / f"{name}.db"
    parts: dict[str, float] = collections.defaultdict(float)
    where = [(runner, "create_db", "database set-up"), (drill_cli, "keep_database", "database set-up"),
             (runner, "build", "scorecards + reports + files"), (writer, "make_files", "scorecards + reports + files"),
             (drill_cli, "_write_one", "incident rows read for scoring (sent to a worker)"),
             (drill_cli, "print_summary", "terminal summary (Rich)"),
             (runner, "_apply", "loop: scripted steps (service commands)"),
             (CrisisService, "open_incident", "loop: scripted steps (service commands)"),
             (Dispatcher, "drain_inline", "loop: notification delivery (drain_inline)"),
             (CrisisService, "tick", "loop: escalations fired (tick)"),
             (CrisisService, "next_due", "loop: next escalation due (next_due)")]
    tracks = [(loaded, STAGGER * i) for i in range(incidents)]
    out.mkdir(parents=True)
    logs.configure(out / "audit.log")  # as `crisis drill run` does: every audit event is also logged there
    with _timed(parts, where):
        t0, c0, w0 = time.perf_counter(), time.process_time(), _children_cpu()
        cards = drill_cli.replay(tracks, playbooks, roster, run_id=name, out_dir=out, db_url=f"sqlite:///{db}",
                                 speed=None, tz="Asia/Shanghai", as_json=False,
                                 console=Console(file=io.StringIO(), width=FILE_WIDTH), wall=SystemClock(),
                                 scratch=True)  # as `crisis drill run` without --db: the drill's own new file
        wall, main_cpu = time.perf_counter() - t0, time.process_time() - c0
        worker = _children_cpu() - w0  # the report-writing workers (joined when the replay returns)
    logs.configure(io.StringIO())
    cpu = main_cpu + worker
    cards = cards if isinstance(cards, list) else [cards]
    span = (loaded.scenario.duration + STAGGER * (incidents - 1)).total_seconds()
    parts["incident rows read for scoring (sent to a worker)"] -= parts["scorecards + reports + files"]
    parts["loop: the runner itself and the rest"] = main_cpu - sum(parts.values())
    if worker:
        parts["scorecards + reports + files (worker processes)"] = worker
    return {"incidents": incidents, "span_s": span, "wall_s": wall, "cpu_s": cpu, "x_real": span / wall,
            "x_real_cpu": span / cpu, "parts": dict(parts), "files": sum(1 for p in out.rglob("*") if p.is_file()),
            "tasks": sum(c["metrics"]["tasks_total"] for c in cards),
            "escalations": sum(c["metrics"]["escalations_fired"] for c in cards)}


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have ended."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_drill(tmp: Path, incidents: int, runs: int = 3) -> dict[str, Any]:
    """The README's drill alone, then the surge `runs` times (a shared machine's speed moves from run to run);
    returns the median run's figures (x_real: simulated s per wall s) with every run's wall time."""
    one = replay(tmp, 1, "one")
    print(f"drill replay, 1 incident, {one['span_s'] / 3600:.0f} h scenario, reports included: "
          f"{one['wall_s']:.3f} s wall ({one['x_real']:,.0f}× real time), {one['cpu_s']:.3f} s CPU", flush=True)
    done = []
    for i in range(runs):
        r = replay(tmp, incidents, f"surge{i}")
        done.append(r)
        print(f"drill replay, {incidents} concurrent incidents, {r['span_s'] / 3600:.1f} h span "
              f"({r['tasks']} tasks, {r['escalations']} escalations, {r['files']} files written): "
              f"{r['wall_s']:.3f} s wall = {r['x_real']:,.0f}× real time; {r['cpu_s']:.3f} s CPU = "
              f"{r['x_real_cpu']:,.0f}×", flush=True)
    r = sorted(done, key=lambda x: x["wall_s"])[len(done) // 2]
    r["runs_wall_s"] = [x["wall_s"] for x in done]
    print(f"median of {runs}: {r['wall_s']:.3f} s wall = {r['x_real']:,.0f}× (runs: "
          f"{', '.join(f'{w:.2f}' for w in r['runs_wall_s'])} s); its CPU by part:")
    for label, secs in sorted(r["parts"].items(), key=lambda kv: -kv[1]):
        print(f"  {label:48s} {secs:7.3f} s CPU  {100 * secs / r['cpu_s']:5.1f} %")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--incidents", type=int, default=100, help="concurrent incidents in the surge")
    ap.add_argument("--runs", type=int, default=3, help="surge runs (the median is reported)")
    args = ap.parse_args()
    logs.configure(io.StringIO())
    with tempfile.TemporaryDirectory() as d:
        bench_drill(Path(d), args.incidents, args.runs)


if __name__ == "__main__":
    main()
