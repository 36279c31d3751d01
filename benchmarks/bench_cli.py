"""CLI commands as a user runs them (a fresh `crisis` process each), timed, with the process's peak memory."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_scale import copy_history, scheduler_env
from history import History

ROOT = Path(__file__).resolve().parents[1]
CRISIS = [sys.executable, "-m", "crisis"]


def _hwm_kib(pid: int) -> int:
    """The process's own peak RSS so far (VmHWM, per address space: it restarts at exec), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


def timed(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, int | None, float]:
    """(wall seconds, peak RSS MiB, exit status or None when killed at `timeout`, CPU seconds (user + system)).

    The CPU time is the figure to compare on a busy machine: wall time also counts the waits for a CPU that
    other processes hold (on the 2-CPU machine shared by three sessions, ±30 % from one run to the next).

    The peak is the command's own VmHWM, polled while it runs: wait4's ru_maxrss also counts the memory of this
    (large, history-building) process the child was forked from before its exec, which made every command
    look like ≈ 100 MiB whatever it did."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while True:
        peak = max(peak, _hwm_kib(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                print(f"  ! {' '.join(argv[2:])} exited {proc.returncode}: {err.strip()[-300:]}", flush=True)
            return wall, (peak or usage.ru_maxrss) / 1024, proc.returncode, usage.ru_utime + usage.ru_stime
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
            return time.perf_counter() - t0, (peak or usage.ru_maxrss) / 1024, None, usage.ru_utime + usage.ru_stime
        time.sleep(0.005)


COMMANDS = {
    "list": ["list"],
    "escalations --pending": ["escalations", "--pending"],
    "show": ["show", "{show}"],
    "open": ["open", "--title", "benchmark", "--category", "medical_dispute", "--by", "duty_officer"],
}


def byte_compile() -> None:
    """Byte-compile crisis/ as installing the wheel does (pip writes the .pyc files), so start-up is measured as
    a deployment runs it. An editable install only gains them on first import, and never where
    PYTHONDONTWRITEBYTECODE is set (then every start compiles each imported module again, ≈ 0.05 s here)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "crisis")], check=True)
    print("byte-compiled crisis/ first (as a wheel install does)", flush=True)


def bench_commands(h: History, work: Path, *, timeout: float = 60.0) -> dict[str, dict[str, float | None]]:
    byte_compile()
    db, nf = copy_history(h, work)
    # The copy leaves ~700 MB of dirty pages; the first fsync of the notification file (`open` delivers to the
    # file channel) would write back the whole 100 MB copy first (38 ms instead of 4 ms measured with strace on
    # a quiet disk, far more while other processes write). That is the benchmark's copy, not the command: a
    # deployment's notification file is not a file written a second ago. Write the copies out before timing.
    os.sync()
    env = {**scheduler_env(db, nf, work), "COLUMNS": "160"}
    res: dict[str, dict[str, float | None]] = {}
    for name, args in COMMANDS.items():
        argv = [*CRISIS, *(a.format(show=h.incidents) for a in args)]
        wall, rss, rc, cpu = timed(argv, env, timeout)
        res[name] = {"seconds": wall if rc is not None else None, "cpu_seconds": cpu, "peak_mib": rss,
                     "timeout": timeout}
        shown = f"{wall:.2f} s (CPU {cpu:.2f} s)" if rc is not None else f"> {timeout:.0f} s (stopped)"
        print(f"`crisis {name}` with {h.incidents:,} incidents of history: {shown}, peak {rss:,.0f} MiB",
              flush=True)
    return res


def bench_startup(work: Path, *, runs: int = 5) -> dict[str, float]:
    """Median wall time (and CPU time, as "<name> cpu") of `crisis --help` and `crisis show 1` on a one-incident
    database."""
    byte_compile()
    work.mkdir(parents=True, exist_ok=True)
    env = scheduler_env(work / "small.db", work / "small.jsonl", work)
    subprocess.run([*CRISIS, "db", "init"], env=env, cwd=ROOT, capture_output=True)  # where commands don't create it
    subprocess.run([*CRISIS, "open", "--title", "t", "--category", "medical_dispute", "--by", "duty_officer"],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    res = {}
    for name, args in {"--help": ["--help"], "show 1": ["show", "1"]}.items():
        runs_ = [timed([*CRISIS, *args], env, 30) for _ in range(runs)]
        walls = [r[0] for r in runs_]
        res[name], res[f"{name} cpu"] = statistics.median(walls), statistics.median(r[3] for r in runs_)
        print(f"start-up `crisis {name}`: median {res[name]:.3f} s of {runs} (min {min(walls):.3f} s; CPU median "
              f"{res[f'{name} cpu']:.3f} s)", flush=True)
    return res
