"""Web board render time with 1,000 open incidents and 20,000 tasks on SQLite, as a ratio to a bare endpoint
(a constant JSON route added to the same app) measured in the same run; plus the SQL statements per board.

Run: .venv/bin/python benchmarks/bench_web.py [--incidents 1000] [--tasks-per 20] [--requests 50]

In-process (Starlette's TestClient, signed in through the login form), so the figure is the page's own cost:
the read model's queries and the Jinja2 rendering. Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import event, insert

from crisis.clock import VirtualClock
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.store.db import ROOT, make_engine
from crisis.store.migrate import create_db
from crisis.store.models import Incident, Task

sys.path.insert(0, str(ROOT / "tests"))
from web_support import login, make_app

NOW = datetime(2026, 3, 14, 13, 0, tzinfo=UTC)


def populate(engine, incidents: int, tasks_per: int) -> None:  # noqa: ANN001
    inc_rows = [{"title": f"舆情事件 {i}", "category": "medical_dispute", "signals": {"reposts": i},
                 "stage": "responding", "severity": ("I", "II", "III", "IV")[i % 4], "opened_by": "duty_officer",
                 "opened_at": NOW, "stage_entered_at": NOW, "playbook_version": "", "version": 0, "cycle": 1}
                for i in range(incidents)]
    with engine.begin() as c:
        c.execute(insert(Incident), inc_rows)
        ids = [r[0] for r in c.exec_driver_sql("SELECT id FROM incident").all()]
        task_rows = [{"incident_id": iid, "cycle": 1, "stage": "responding", "key": f"t{k}", "group": "response",
                      "title_zh": "任务", "title_en": "task", "required": True, "assignee": "duty_officer",
                      "anchor": "stage", "created_at": NOW, "due_at": NOW + timedelta(minutes=k * 30 - 60),
                      "status": "open", "escalation_plan": [], "escalation_level": 0}
                     for iid in ids for k in range(tasks_per)]
        c.execute(insert(Task), task_rows)


def timed(client: TestClient, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = client.get(path)
        out.append(time.perf_counter() - t0)
        assert res.status_code == 200, res.text[:200]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--incidents", type=int, default=1000)
    ap.add_argument("--tasks-per", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'crisis.db'}")
        create_db(engine)
        populate(engine, args.incidents, args.tasks_per)
        svc = CrisisService(engine, load_playbooks(ROOT / "playbooks"), load_roster(ROOT / "examples" / "roster.yaml"),
                            VirtualClock(NOW))
        app = make_app(svc)

        @app.get("/_bare")
        def bare() -> dict[str, bool]:
            return {"ok": True}

        with TestClient(app) as client:
            login(client, "duty_officer")
            timed(client, "/", 3)  # warm-up (templates compiled, connections opened)
            count = [0]
            event.listen(engine, "before_cursor_execute", lambda *a: count.__setitem__(0, count[0] + 1))
            client.get("/board/rows")
            queries = count[0]
            board = timed(client, "/", args.requests)
            rows = timed(client, "/board/rows", args.requests)
            base = timed(client, "/_bare", args.requests)
    med = statistics.median
    print(f"incidents={args.incidents} tasks={args.incidents * args.tasks_per} requests={args.requests}")
    p95 = sorted(board)[int(len(board) * .95) - 1]
    print(f"board page  median {med(board) * 1000:.1f} ms  p95 {p95 * 1000:.1f} ms")
    print(f"board rows  median {med(rows) * 1000:.1f} ms")
    print(f"bare        median {med(base) * 1000:.2f} ms")
    print(f"ratio board/bare {med(board) / med(base):.1f}x; SQL statements per board refresh: {queries}")


if __name__ == "__main__":
    main()
