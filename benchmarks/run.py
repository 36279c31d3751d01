"""Every row of issue 11's targets table, measured on this machine and printed (nothing asserted).

Run: python3 dev.py bench [--only lateness,restart,commands,startup,transitions,drill] [--quick] [--json FILE]

- lateness: 10,000 steps due within 60 s, 100,000 pending, against a real scheduler process (~1.5–4 min);
- restart: kill -9, 8,000 steps come due while down, restart; time to all fired / all delivered (≤ 3 min);
- commands: `list`, `escalations --pending`, `show`, `open` with 100,000 incidents of history (each ≤ 60 s);
- startup: `crisis --help`, `crisis show 1`;
- transitions: persisted transitions/s ÷ raw SQLite insert-commit rate, same run (median of 3 rounds);
- drill: replay of 100 concurrent incidents over a 72 h scenario, reports included (× real time; bench_drill.py).

The 100,000-incident history is bulk-inserted once per run (about a minute) and copied for each benchmark.
--quick scales every count by 1/10 (10,000 incidents, 1,000 due within 6 s, 800 overdue, 10 drill incidents)
and says so; only full runs compare with the targets.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_cli
import bench_drill
import bench_engine
import bench_scale
import history

from crisis import logs

ALL = ["startup", "transitions", "drill", "commands", "restart", "lateness"]


def _fmt(v: Any, unit: str = "s") -> str:
    return "n/a" if v is None else f"{v:.2f} {unit}" if isinstance(v, float) else str(v)


def summary(r: dict[str, Any], scale: float) -> None:
    print("\n| measure | measured | target |\n|---|---|---|")
    if "lateness" in r:
        x = r["lateness"]
        print(f"| escalation lateness, {x['due']:,} due within {60 * scale:.0f} s: commit p99 / delivery p99 "
              f"| {_fmt(x['commit_p99'])} / {_fmt(x['deliver_p99'])} | ≤ 1 s / ≤ 2 s |")
    if "restart" in r:
        x = r["restart"]
        print(f"| restart after kill -9, {x['overdue']:,} overdue: all fired / all delivered "
              f"| {_fmt(x['all_fired_s'])} / {_fmt(x['all_delivered_s'])} | ≤ 3 s / ≤ 5 s |")
    if "transitions" in r:
        x = r["transitions"]
        print(f"| transitions/s ÷ raw SQLite commits/s | {x['ratio']:.4f}, median of {len(x['rounds'])} rounds "
              f"({x['per_s']:,.0f} / {x['raw_per_s']:,.0f}; rounds {', '.join(f'{v:.4f}' for v in x['rounds'])}; "
              f"the same statements through the raw driver: {x['ceiling_ratio']:.4f}) | ≥ 0.05 |")
    if "commands" in r:
        for name, x in r["commands"].items():
            t = (f"{_fmt(x['seconds'])} (CPU {_fmt(x.get('cpu_seconds'))})" if x["seconds"] is not None
                 else f"> {x['timeout']:.0f} s")
            print(f"| `{name}`, {r['incidents']:,} incidents | {t}, {x['peak_mib']:,.0f} MiB | ≤ 0.5 s |")
    if "startup" in r:
        x = r["startup"]
        print(f"| start-up `--help` / `show 1` | {x['--help']:.3f} s / {x['show 1']:.3f} s (CPU {x['--help cpu']:.3f} "
              f"/ {x['show 1 cpu']:.3f} s) | ≤ 0.3 s |")
    if "drill" in r:
        x = r["drill"]
        runs = ", ".join(f"{w:.2f}" for w in x["runs_wall_s"])
        print(f"| drill replay, {x['incidents']} concurrent incidents, reports included | {x['x_real']:,.0f}× "
              f"(median of {len(x['runs_wall_s'])} runs: {x['wall_s']:.2f} s wall, runs {runs} s; "
              f"{x['x_real_cpu']:,.0f}× on CPU time, {x['cpu_s']:.2f} s) | ≥ 100,000× |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--quick", action="store_true", help="every count / 10 (not comparable with the targets)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--work", type=Path, help="work directory (default: a temporary one, removed after)")
    args = ap.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(ALL)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    scale = 0.1 if args.quick else 1.0
    logs.configure(io.StringIO())
    results: dict[str, Any] = {"scale": scale, "incidents": int(100_000 * scale)}
    if scale != 1.0:
        print(f"QUICK RUN: counts scaled by {scale} — figures are not comparable with the targets table")
    with tempfile.TemporaryDirectory(dir=args.work) as d:
        tmp = Path(d)
        if "startup" in only:
            results["startup"] = bench_cli.bench_startup(tmp / "startup")
        if "transitions" in only:
            results["transitions"] = bench_engine.transition_rounds(tmp, 100, 3)
        if "drill" in only:
            n = max(1, int(100 * scale))
            results["drill"] = bench_drill.bench_drill(tmp, n)
        if {"commands", "restart", "lateness"} & set(only):
            t0 = time.perf_counter()
            h = history.build(tmp, results["incidents"])
            print(f"history: {h.incidents:,} incidents ({h.open_incidents:,} open, {h.open_incidents * 5:,} "
                  f"pending steps) bulk-inserted in {time.perf_counter() - t0:.1f} s", flush=True)
            if "commands" in only:
                results["commands"] = bench_cli.bench_commands(h, tmp / "commands")
            if "restart" in only:
                results["restart"] = bench_scale.bench_restart(h, tmp / "restart", overdue=int(8000 * scale))
            if "lateness" in only:
                results["lateness"] = bench_scale.bench_lateness(h, tmp / "lateness", due=int(10_000 * scale),
                                                                 window=60 * scale)
    summary(results, scale)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
