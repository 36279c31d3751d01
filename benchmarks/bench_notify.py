"""Notification delivery: throughput to a local webhook, and escalation lateness while a channel hangs.

Run: .venv/bin/python benchmarks/bench_notify.py [--messages 10000] [--incidents 200]
Prints its figures; nothing here is asserted (timing targets don't belong in unit tests).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import insert

from crisis import logs, scheduler
from crisis.clock import SystemClock
from crisis.notify.channels import FileChannel, LogChannel, MemoryChannel
from crisis.notify.chat import JsonWebhook
from crisis.notify.dispatch import Dispatcher, Policy
from crisis.notify.messages import Renderer
from crisis.notify.outbox import Routing, messages
from crisis.playbook import load_playbooks
from crisis.principal import Principal
from crisis.roster import Roster, load_roster
from crisis.service import CrisisService
from crisis.store.db import ROOT, make_engine
from crisis.store.migrate import create_db
from crisis.store.models import OutboxMessage

FAST = """
category: fast_bench
name: {zh: 基准, en: Bench}
default_severity: II
escalation:
  chain: [assignee, group_head, leadership_head, on_call]
  wait: 1s
  repeat: 0
stages:
  monitoring:
    tasks:
      - {key: a, group: monitoring, role: info_staff, title: {zh: 甲, en: A}, due: 1s}
      - {key: b, group: response, role: legal_counsel, title: {zh: 乙, en: B}, due: 2s}
"""


def receiver(hang: threading.Event | None = None) -> tuple[ThreadingHTTPServer, list[int]]:
    got: list[int] = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *_a: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if hang is not None:
                hang.wait(60)
                return
            got.append(1)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def everyone_prefers(roster: Roster, channel: str) -> Roster:
    data = roster.model_dump(by_alias=True)
    for p in data["people"]:
        p["channels"] = [channel]
    return Roster.model_validate(data)


def bench_throughput(tmp: Path, n: int, workers: int) -> None:
    roster = everyone_prefers(load_roster(ROOT / "examples" / "roster.yaml"), "webhook")
    engine = make_engine(f"sqlite:///{tmp / 'tp.db'}")
    create_db(engine)
    clock = SystemClock()
    routing = Routing(channels=(), personal=frozenset({"webhook"}))
    now = clock.now()
    rows = [r for i in range(n) for r in messages(
        kind="escalation", key=f"esc:{i}:1", recipient="oncall_admin", incident_id=None, now=now, roster=roster,
        routing=routing, facts={"severity": "I", "incident": 1, "title": "t", "task": i, "task_zh": "甲",
                                "task_en": "A", "level": 1, "overdue_s": 60})]
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), rows)  # type: ignore[attr-defined]
    server, got = receiver()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    d = Dispatcher(engine, {"webhook": JsonWebhook(url, "secret", timeout=5)}, Renderer(roster, routing.tz), clock,
                   routing=routing, policy=Policy(timeout=5, workers=workers, batch=500))
    t0 = time.perf_counter()
    stats = d.drain()
    wall = time.perf_counter() - t0
    server.shutdown()
    print(f"delivery throughput: {stats.delivered} of {n} queued messages to a local signed webhook in {wall:.2f} s "
          f"= {stats.delivered / wall:,.0f} msg/s ({workers} workers; receiver counted {len(got)})")


def bench_local(tmp: Path, n: int) -> None:
    """The record channels every message goes to: the file (fsync per batch, the key index) and the log."""
    roster = load_roster(ROOT / "examples" / "roster.yaml")
    engine = make_engine(f"sqlite:///{tmp / 'local.db'}")
    create_db(engine)
    clock = SystemClock()
    routing = Routing(channels=("log", "file"))
    now = clock.now()
    rows = [r for i in range(n) for r in messages(
        kind="escalation", key=f"esc:{i}:1", recipient="oncall_admin", incident_id=1, now=now, roster=roster,
        routing=routing, facts={"severity": "I", "incident": 1, "title": "t", "task": i, "task_zh": "甲",
                                "task_en": "A", "level": 1, "overdue_s": 60, "due_at": now.isoformat()})]
    with engine.begin() as conn:
        conn.execute(insert(OutboxMessage.__table__), rows)  # type: ignore[attr-defined]
    chans = {"log": LogChannel(), "file": FileChannel(tmp / "notifications.jsonl")}
    d = Dispatcher(engine, chans, Renderer(roster, routing.tz), clock, routing=routing)
    t0 = time.perf_counter()
    stats = d.drain()
    wall = time.perf_counter() - t0
    print(f"local delivery: {stats.delivered:,} of {len(rows):,} queued messages (file with fsync, and log) "
          f"in {wall:.2f} s "
          f"= {stats.delivered / wall:,.0f} msg/s")


def bench_lateness_with_hung_channel(tmp: Path, incidents: int) -> None:
    pb = tmp / "playbooks"
    pb.mkdir()
    (pb / "fast.yaml").write_text(FAST, "utf-8")
    playbooks = load_playbooks(pb)
    roster = everyone_prefers(load_roster(ROOT / "examples" / "roster.yaml"), "webhook")
    engine = make_engine(f"sqlite:///{tmp / 'late.db'}")
    create_db(engine)
    clock = SystemClock()
    routing = Routing(channels=("log",), personal=frozenset({"webhook"}))
    svc = CrisisService(engine, playbooks, roster, clock, routing=routing)
    hang = threading.Event()
    server, _ = receiver(hang)
    record = MemoryChannel("log")
    chans = {"log": record, "webhook": JsonWebhook(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5)}
    d = Dispatcher(engine, chans, Renderer(roster, routing.tz), clock, routing=routing,
                   policy=Policy(timeout=5, workers=4), on_call=lambda now: svc.on_call(now).primary)
    with scheduler.background(svc, chans, clock, sweep_seconds=0.2, dispatcher=d):
        for i in range(incidents):  # deadlines spread over the next few seconds; every page also goes to the
            svc.open_incident(title=f"bench {i}", category="fast_bench",  # hung webhook
                              principal=Principal(person="duty_officer", auth="cli"))
        last_due = clock.now() + timedelta(seconds=2 + 3)
        while clock.now() < last_due + timedelta(seconds=1.5):
            time.sleep(0.2)
    hang.set()
    server.shutdown()
    esc = svc.escalations()
    late = sorted(e.late_seconds for e in esc)
    rows = [m for m in svc.outbox() if m.channel == "log" and m.kind == "escalation" and m.delivered_at]
    deliv = sorted((m.delivered_at - m.created_at).total_seconds() for m in rows)
    hung = [m for m in svc.outbox() if m.channel == "webhook" and m.delivered_at is None]

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    print(f"escalation firing lateness while the webhook hangs: {len(late)} steps, p50 {pct(late, .5) * 1000:.0f} ms, "
          f"p99 {pct(late, .99) * 1000:.0f} ms, max {late[-1] * 1000 if late else 0:.0f} ms")
    print(f"  same pages on the healthy channel, queued → delivered: p50 {pct(deliv, .5) * 1000:.0f} ms, "
          f"p99 {pct(deliv, .99) * 1000:.0f} ms ({len(deliv)} messages); {len(hung)} webhook messages stuck/retrying")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--incidents", type=int, default=200)
    args = ap.parse_args()
    logs.configure(io.StringIO())
    with tempfile.TemporaryDirectory() as tmp:
        bench_local(Path(tmp), args.messages)
        bench_throughput(Path(tmp), args.messages, args.workers)
        bench_lateness_with_hung_channel(Path(tmp), args.incidents)


if __name__ == "__main__":
    main()
