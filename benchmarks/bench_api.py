"""API throughput and latency: the incident list and completing a task, with 1,000 open incidents on SQLite,
against a bare FastAPI endpoint returning a constant, measured in the same run (the ratio is the figure).

Run: python3 dev.py bench-api [--incidents 1000] [--requests 1000] [--clients 4]

Both servers are real uvicorn processes on 127.0.0.1 (one worker each, like `crisis serve --no-scheduler`);
the client is httpx with keep-alive from `--clients` threads. The list is `GET /api/v1/incidents` (first page
of 50, with next deadlines) and each completion `POST /api/v1/tasks/{id}/done` a different open task, both
with a bearer token. Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx

from crisis import logs
from crisis.accounts import Accounts
from crisis.clock import SystemClock
from crisis.playbook import load_playbooks
from crisis.principal import Principal
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.store.db import ROOT, make_engine
from crisis.store.migrate import create_db

HERE = Path(__file__).resolve().parent


def seed(db: Path, incidents: int) -> tuple[str, list[int]]:
    """Open `incidents` incidents; return a write token and one open task per incident."""
    engine = make_engine(f"sqlite:///{db}")
    create_db(engine)
    roster = load_roster(ROOT / "examples" / "roster.yaml")
    svc = CrisisService(engine, load_playbooks(ROOT / "playbooks"), roster, SystemClock())
    officer = Principal(person=roster.roles["duty_officer"], auth="cli")
    tasks = []
    for i in range(incidents):
        inc = svc.open_incident(title=f"网传事件 {i}", category="medical_dispute", principal=officer,
                                source_url=f"https://weibo.example/p/{i}", signals={"reposts": i})
        tasks.append(next(t.id for t in svc.tasks(inc.id or 0) if t.status == "open"))
    secret, _ = Accounts(engine, roster, svc.clock).create_token("bench", ["write"], person_id="president",
                                                                 by="president")
    engine.dispose()
    return secret, [t for t in tasks if t is not None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], port: int, probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code < 500:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def measure(base: str, headers: dict[str, str], requests: int, clients: int,
            call: Callable[[httpx.Client, int], httpx.Response]) -> dict[str, float]:
    """`requests` calls spread over `clients` threads: requests/s, p50 and p99 latency in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                res = call(c, i)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if res.status_code >= 400:
                        failures.append(f"{res.status_code} {res.text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, first: {failures[0]}")
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1000, help="per endpoint (≤ incidents for completions)")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    logs.configure(io.StringIO())
    with tempfile.TemporaryDirectory(prefix="crisis-bench-api-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        secret, tasks = seed(work / "crisis.db", args.incidents)
        print(f"seeded {args.incidents:,} open incidents in {time.perf_counter() - t0:.1f} s", flush=True)
        env = {**os.environ, "CRISIS_DB_URL": f"sqlite:///{work / 'crisis.db'}", "CRISIS_LOG": str(work / "log"),
               "CRISIS_NOTIFY_FILE": str(work / "notifications.jsonl")}
        api_port, bare_port = free_port(), free_port()
        api = start([sys.executable, "-m", "crisis", "serve", "--no-scheduler", "--port", str(api_port)], env,
                    api_port, "/api/v1/openapi.json")
        bare = start([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--port", str(bare_port),
                      "--log-level", "warning", "--no-access-log", "bare_app:app"], env, bare_port, "/constant")
        try:
            auth = {"Authorization": f"Bearer {secret}"}
            api_base, bare_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
            n = args.requests
            measure(bare_base, {}, 100, args.clients, lambda c, i: c.get("/constant"))  # warm-up
            measure(api_base, auth, 100, args.clients, lambda c, i: c.get("/api/v1/incidents"))
            rows = {
                "bare FastAPI constant": measure(bare_base, {}, n, args.clients, lambda c, i: c.get("/constant")),
                "GET /api/v1/incidents (page of 50)": measure(api_base, auth, n, args.clients,
                                                              lambda c, i: c.get("/api/v1/incidents")),
                "POST /api/v1/tasks/{id}/done": measure(api_base, auth, min(n, len(tasks)), args.clients,
                                                        lambda c, i: c.post(f"/api/v1/tasks/{tasks[i]}/done",
                                                                            json={})),
            }
        finally:
            for proc in (api, bare):
                proc.terminate()
                proc.wait(timeout=30)
    base = rows["bare FastAPI constant"]["rps"]
    print(f"\n{args.incidents:,} open incidents on SQLite, {args.clients} clients, {n:,} requests per endpoint\n")
    print("| endpoint | requests/s | p50 ms | p99 ms | ÷ bare requests/s |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps'] / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
