"""The same engine on PostgreSQL (the scale-out store): schema, audit immutability, time zones, exactly-once
escalation under concurrent ticks (threads and processes), commands racing on one row, outbox row claiming, the
scheduler's leader lock, and a drill replay that scores the same as on SQLite.

Runs on a throwaway local cluster (tests/pgserver.py, server time zone Asia/Shanghai); skipped, with the reason,
where no PostgreSQL server can be started.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pgserver
import pytest
from helpers import DRILLS_DIR, PLAYBOOKS_DIR, ROSTER_PATH, START, by
from pgserver import pg_cluster, pg_url  # noqa: F401  (fixtures)
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from crisis.drill.runner import run_drill
from crisis.drill.scenario import load_scenario
from crisis.errors import CrisisError, Forbidden
from crisis.notify.outbox import pending
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.scheduler import AlreadyRunning, leader_lock
from crisis.service import CrisisService
from crisis.store.db import make_engine, write_session
from crisis.store.migrate import create_db, head

REASON = pgserver.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no PostgreSQL here: {REASON}")
H = timedelta(hours=1)
BEIJING = timezone(timedelta(hours=8))


@pytest.fixture()
def pg_engine(pg_url):  # noqa: F811
    engine = make_engine(pg_url)
    create_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture()
def pg_svc(pg_engine, playbooks, roster, clock) -> CrisisService:
    return CrisisService(pg_engine, playbooks, roster, clock)


def _raw(url: str):
    """A plain psycopg connection to the test database (outside the engine and its pool)."""
    import psycopg  # here, not at the top: without psycopg the module is skipped, not broken

    u = make_url(url)
    return psycopg.connect(host=u.query["host"], user=u.username, dbname=u.database, connect_timeout=10)


def _race(url: str, lock_sql: str, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run `calls` in threads while another transaction holds `lock_sql`'s row lock; release it only once every
    call is waiting on a lock, so they all start from the same committed state. Returns results or exceptions."""
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except Exception as exc:
            outcomes[i] = exc

    with _raw(url) as blocker, _raw(url) as probe:
        probe.autocommit = True
        blocker.execute(lock_sql)
        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND wait_event_type = 'Lock'").fetchone()
            if (waiting and waiting[0] >= len(calls)) or not any(t.is_alive() for t in threads):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the racing commands never queued up behind the lock")
        blocker.rollback()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a racing command hung"
    return outcomes


# --------------------------------------------------------------------------- schema
def test_schema_is_created_once_and_init_is_idempotent(pg_engine):
    assert create_db(pg_engine) == []  # a second start changes nothing
    with pg_engine.connect() as conn:
        tables = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        assert {"incident", "task", "escalation", "event", "statement", "outboxmessage", "alembic_version"} <= tables
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
        types = dict(conn.execute(text("SELECT column_name, data_type FROM information_schema.columns "
                                       "WHERE table_name = 'task'")).all())
        assert types["due_at"] == "timestamp without time zone"  # naive UTC by contract (store/types.py)
        assert types["escalation_plan"] == "json"


def test_processes_starting_together_on_an_empty_database(pg_url):  # noqa: F811
    """The scheduler and a CLI command may both find a brand-new database: both create it, neither fails."""
    engines = [make_engine(pg_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine) -> None:
        try:
            barrier.wait(timeout=30)
            create_db(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        with engines[0].connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
            assert conn.execute(text("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'event'::regclass "
                                     "AND NOT tgisinternal")).scalar() >= 1
    finally:
        for e in engines:
            e.dispose()


# --------------------------------------------------------------------------- the service end to end
def test_service_end_to_end_with_utc_times(pg_svc, clock, roster):
    inc = pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"), severity="II")
    pg_svc.complete_task(pg_svc.find_task(inc.id, "compile_report").id, principal=by("publicity_head"))
    clock.advance(timedelta(minutes=10))
    pg_svc.fire(inc.id, "report", principal=by("duty_officer"))
    back = pg_svc.incident(inc.id)
    assert back.opened_at == START and back.opened_at.tzinfo is not None and back.opened_at.utcoffset() == timedelta(0)
    assert back.stage == "reported" and back.stage_entered_at == START + timedelta(minutes=10)
    assessing = pg_svc.find_task(inc.id, "assess_severity")
    assert assessing.due_at == START + timedelta(minutes=70) and assessing.due_at.utcoffset() == timedelta(0)
    assert pg_svc.next_due() == START + timedelta(minutes=70)  # an aggregate, past the column type: still UTC

    clock.advance(H + timedelta(minutes=15))  # assess_severity and verify_facts due at +1h10m, wait 15m (II)
    fired = pg_svc.tick()
    # the president's own task goes on to on-call; the medical-affairs head's own task on to the president
    assert sorted((e.level, e.recipient) for e in fired) == [
        (1, "medical_affairs"), (1, "president"), (2, "oncall_admin"), (2, "president")]
    stored = pg_svc.escalations(inc.id)
    assert {(e.level, e.scheduled_at, e.fired_at, e.late_seconds) for e in stored} == {
        (1, START + timedelta(minutes=70), clock.now(), 15 * 60.0),
        (2, START + timedelta(minutes=85), clock.now(), 0.0)}
    assert all(e.fired_at.tzinfo is not None and e.fired_at.utcoffset() == timedelta(0) for e in stored)
    ack = pg_svc.acknowledge(principal=by("president"), task_id=assessing.id)
    assert ack.level == 2 and ack.acked_at == clock.now()
    hold_end = clock.now() + timedelta(minutes=15)  # the acknowledgement holds the chain for the grade's wait
    clock.advance(5 * H)
    later = pg_svc.tick()
    resumed = [(e.level, e.scheduled_at) for e in later if e.task_id == assessing.id]
    assert resumed[0] == (3, hold_end)  # still open after the hold: the chain resumed at the next level
    assert {e.recipient for e in later} >= {"oncall_admin"}  # verify_facts kept climbing
    assert pg_svc.tick() == []  # nothing fires twice

    for t in pg_svc.tasks(inc.id):
        if t.stage == "reported" and t.status == "open":
            pg_svc.complete_task(t.id, principal=by("president"))
    with pytest.raises(Forbidden):
        pg_svc.fire(inc.id, "assess", principal=by("duty_officer"), decision="activate")
    boss = by(roster.leadership_head())
    assert pg_svc.fire(inc.id, "assess", principal=boss, decision="activate").stage == "assessing"
    kinds = [e.kind for e in pg_svc.timeline(inc.id)]
    assert kinds.count("escalation_fired") == len(pg_svc.escalations(inc.id))
    assert kinds.count("escalation_acknowledged") == 1 and kinds[-1] == "task_assigned"


def test_times_are_stored_as_utc_whatever_the_zones(pg_svc, pg_url):  # noqa: F811
    """Input in Beijing time, a server in Asia/Shanghai: the row holds UTC and reads back as the same instant."""
    local = START.astimezone(BEIJING)
    inc = pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"), now=local)
    assert pg_svc.incident(inc.id).opened_at == START
    with _raw(pg_url) as conn:
        assert conn.execute("SHOW timezone").fetchone() == (pgserver.SERVER_TIMEZONE,)
        assert conn.execute("SELECT opened_at FROM incident WHERE id = %s", (inc.id,)).fetchone() == (
            START.replace(tzinfo=None),)
    due = pg_svc.next_deadlines()[inc.id]
    assert due.utcoffset() == timedelta(0) and due == min(t.due_at for t in pg_svc.tasks(inc.id) if t.due_at)
    # a due time compared in a query with a Beijing-time `now` is the same instant, not eight hours off
    first = min(t.next_escalation_at for t in pg_svc.tasks(inc.id) if t.next_escalation_at)
    assert pg_svc.tick((first - timedelta(seconds=1)).astimezone(BEIJING)) == []
    assert len(pg_svc.tick(first.astimezone(BEIJING))) >= 1


def test_audit_timeline_is_append_only(pg_svc, pg_engine):
    inc = pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"))
    before = [(e.id, e.actor, e.kind) for e in pg_svc.timeline(inc.id)]
    for stmt in ("UPDATE event SET actor = 'someone_else'", "DELETE FROM event", "TRUNCATE event CASCADE"):
        with pytest.raises(DBAPIError, match="append-only"), write_session(pg_engine) as s:
            s.execute(text(stmt))
    assert [(e.id, e.actor, e.kind) for e in pg_svc.timeline(inc.id)] == before
    pg_svc.note(inc.id, "media_call", "a reporter called", principal=by("duty_officer"))  # inserts still work
    assert len(pg_svc.timeline(inc.id)) == len(before) + 1


# --------------------------------------------------------------------------- exactly once under concurrency
def _overdue_world(svc: CrisisService, n: int = 8) -> set[tuple[int, int]]:
    ids = [svc.open_incident(title=f"pg {i}", category="medical_dispute", principal=by("duty_officer"),
                             severity="II").id for i in range(n)]
    expected = {(t.id, level) for iid in ids for t in svc.tasks(iid) for level in range(1, len(t.escalation_plan) + 1)}
    assert len(expected) == n * (6 + 5)  # preserve_evidence climbs 6 levels, the head's own compile_report 5
    return expected


def _assert_exactly_once(svc: CrisisService, fired: list[tuple[int, int]], expected: set[tuple[int, int]]) -> None:
    assert len(fired) == len(set(fired))  # no step fired by two workers
    assert set(fired) == expected  # and none lost
    assert {(e.task_id, e.level) for e in svc.escalations()} == expected
    assert len(svc.escalations()) == len(expected)
    keys = [m.dedupe_key for m in svc.outbox() if m.payload.get("type") == "escalation"]
    assert len(keys) == len(set(keys)) == len(expected) * len(svc.channels)
    assert svc.tick() == []


def test_concurrent_ticks_fire_each_step_exactly_once(pg_engine, playbooks, roster, clock):
    svc = CrisisService(pg_engine, playbooks, roster, clock)
    expected = _overdue_world(svc)
    clock.advance(10 * H)
    workers = [CrisisService(pg_engine, playbooks, roster, clock) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    results: list[list] = [[] for _ in workers]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = workers[i].tick(clock.now())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    _assert_exactly_once(svc, [(e.task_id, e.level) for r in results for e in r], expected)


_TICKER = """
import json, sys
from datetime import datetime
from crisis import logs
from crisis.clock import VirtualClock
from crisis.playbook import load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.store.db import make_engine
url, playbooks, roster, now = sys.argv[1:]
logs.configure(open("/dev/null", "w"))
now = datetime.fromisoformat(now)
svc = CrisisService(make_engine(url), load_playbooks(playbooks), load_roster(roster), VirtualClock(now))
svc.incidents()  # connected and warm
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([[e.task_id, e.level] for e in svc.tick(now)]), flush=True)
"""


def test_two_scheduler_processes_ticking_together_fire_each_step_once(pg_url, playbooks, roster, clock):  # noqa: F811
    engine = make_engine(pg_url)
    create_db(engine)
    try:
        svc = CrisisService(engine, playbooks, roster, clock)
        expected = _overdue_world(svc)
        now = (clock.now() + 10 * H).isoformat()
        procs = [subprocess.Popen([sys.executable, "-c", _TICKER, pg_url, str(PLAYBOOKS_DIR),
                                   str(ROSTER_PATH), now],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        try:
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr
            for p in procs:  # go, as close together as two writes can be
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            outputs = [p.communicate(timeout=60) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
        fired = [tuple(x) for out, _ in outputs for x in json.loads(out.strip().splitlines()[-1])]
        _assert_exactly_once(svc, fired, expected)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- commands racing on one row
def test_two_people_completing_the_same_task_at_once(pg_svc, pg_url):  # noqa: F811
    inc = pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"))
    task = pg_svc.find_task(inc.id, "compile_report")
    outcomes = _race(pg_url, f"SELECT * FROM incident WHERE id = {inc.id} FOR UPDATE", [
        lambda: pg_svc.complete_task(task.id, principal=by("publicity_head")),
        lambda: pg_svc.complete_task(task.id, principal=by("info_staff"))])
    done = [o for o in outcomes if not isinstance(o, Exception)]
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(done) == 1 and len(failed) == 1, outcomes
    assert isinstance(failed[0], CrisisError) and "already done" in str(failed[0])
    assert pg_svc.find_task(inc.id, "compile_report").done_by == done[0].done_by
    assert [e.kind for e in pg_svc.timeline(inc.id)].count("task_done") == 1


def test_two_people_acknowledging_the_same_escalation_at_once(pg_svc, pg_url, clock):  # noqa: F811
    inc = pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"), severity="II")
    task = pg_svc.find_task(inc.id, "preserve_evidence")
    clock.advance(3 * H)
    pg_svc.tick()
    paged = sorted({e.recipient for e in pg_svc.escalations(inc.id) if e.task_id == task.id})
    assert len(paged) >= 2
    outcomes = _race(pg_url, f"SELECT * FROM incident WHERE id = {inc.id} FOR UPDATE", [
        lambda: pg_svc.acknowledge(principal=by(paged[0]), task_id=task.id),
        lambda: pg_svc.acknowledge(principal=by(paged[1]), task_id=task.id)])
    acked = [o for o in outcomes if not isinstance(o, Exception)]
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(acked) == 1 and len(failed) == 1, outcomes
    assert isinstance(failed[0], CrisisError) and "already acknowledged" in str(failed[0])
    assert pg_svc.find_task(inc.id, "preserve_evidence").acked_by == acked[0].acked_by
    assert [e.kind for e in pg_svc.timeline(inc.id)].count("escalation_acknowledged") == 1


def test_two_reviewers_at_once_do_not_lose_a_review(pg_svc, pg_url):  # noqa: F811
    inc = pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"), severity="II")
    st = pg_svc.draft_statement(inc.id, title="情况通报", body="我院已成立调查组，后续进展将及时通报。",
                                principal=by("publicity_head"), next_update="24h")
    outcomes = _race(pg_url, f"SELECT * FROM statement WHERE id = {st.id} FOR UPDATE", [
        lambda: pg_svc.review_statement(st.id, principal=by("info_staff"), approve=True),
        lambda: pg_svc.review_statement(st.id, principal=by("liaison"), approve=True)])
    ok = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(ok) == 1 and isinstance(next(o for o in outcomes if isinstance(o, Exception)), Forbidden), outcomes
    (stored,) = pg_svc.statements(inc.id)
    assert [r["level"] for r in stored.reviews] == [1]  # the second reviewer was asked for level 2
    events = [e for e in pg_svc.timeline(inc.id) if e.kind == "statement_reviewed"]
    assert [e.data["level"] for e in events] == [1]


# --------------------------------------------------------------------------- outbox and scheduler
def test_concurrent_dispatchers_claim_disjoint_outbox_rows(pg_svc, pg_engine):
    pg_svc.open_incident(title="pg", category="medical_dispute", principal=by("duty_officer"))
    total = len(pg_svc.outbox(undelivered_only=True))
    assert total == 4  # two tasks assigned, two channels
    with Session(pg_engine) as first, Session(pg_engine) as second:  # two open transactions, side by side
        mine = {m.id for m in pending(first, limit=2)}
        theirs = {m.id for m in pending(second, limit=10)}
        third = {m.id for m in pending(second, limit=10)}  # its own claims are not skipped
        first.rollback()
        second.rollback()
    assert len(mine) == 2 and len(theirs) == total - 2 and not mine & theirs and third == theirs
    with Session(pg_engine) as again:  # rolled back: claims released, everything pending again
        assert {m.id for m in pending(again)} == mine | theirs


def test_two_dispatchers_deliver_each_message_once_and_fail_over(pg_svc, pg_engine, clock):
    """The real dispatcher on PostgreSQL: two of them draining at once split the rows (leases under
    SKIP LOCKED); a channel that always fails ends in `failed_at` and a page to the on-call administrator."""
    import threading

    from crisis.notify.channels import DeliveryError, MemoryChannel
    from crisis.notify.dispatch import Dispatcher, Policy
    from crisis.notify.messages import Renderer

    class Broken:
        name = "file"

        def deliver(self, message):
            raise DeliveryError("disk full")

    for i in range(20):
        pg_svc.open_incident(title=f"pg {i}", category="medical_dispute", principal=by("duty_officer"))
    seen = MemoryChannel("log")
    tz = pg_svc.routing.tz

    def make(file_channel):
        return Dispatcher(pg_engine, {"log": seen, "file": file_channel}, Renderer(pg_svc.roster, tz), clock,
                          routing=pg_svc.routing, policy=Policy(max_attempts=1),
                          on_call=lambda now: pg_svc.on_call(now).primary)

    a, b = make(Broken()), make(Broken())
    threads = [threading.Thread(target=d.drain) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    keys = [m.dedupe_key for m in seen.delivered]
    assert len(keys) == len(set(keys))  # nobody got a message twice
    rows = pg_svc.outbox()
    assert all(m.delivered_at for m in rows if m.channel == "log")
    assert all(m.failed_at and m.last_error == "DeliveryError: disk full" for m in rows if m.channel == "file")
    failed = [m for m in rows if m.channel == "file" and m.kind != "delivery_failed"]  # a failed page is not paged
    pages = {m.payload["message"] for m in rows if m.kind == "delivery_failed" and m.channel == "log"}
    assert pages == {m.id for m in failed}  # one page per failed message, on PostgreSQL's ON CONFLICT path


def test_one_scheduler_per_database(pg_url):  # noqa: F811
    a, b = make_engine(pg_url), make_engine(pg_url)
    try:
        with leader_lock(a), pytest.raises(AlreadyRunning, match="advisory lock"), leader_lock(b):
            pass
        with leader_lock(b):  # released with the first holder
            with pytest.raises(AlreadyRunning), leader_lock(b):  # same engine, another connection: still one leader
                pass
            with a.connect() as conn:  # the lock lives on a connection that is not used for anything else
                held = conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                         "AND granted AND database = (SELECT oid FROM pg_database "
                                         "WHERE datname = current_database())")).scalar()
                assert held == 1
        with a.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                                     "(SELECT oid FROM pg_database WHERE datname = current_database())")).scalar() == 0
        with leader_lock(a):
            pass
    finally:
        a.dispose()
        b.dispose()


def test_drill_replay_scores_the_same_as_on_sqlite(pg_engine, tmp_path):
    loaded = load_scenario(DRILLS_DIR / "medical-dispute-viral.yaml")
    playbooks, roster = load_playbooks(PLAYBOOKS_DIR), load_roster(loaded.roster_path())
    on_pg = run_drill(loaded, engine=pg_engine, playbooks=playbooks, roster=roster).scorecard
    sqlite = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        on_sqlite = run_drill(loaded, engine=sqlite, playbooks=playbooks, roster=roster).scorecard
    finally:
        sqlite.dispose()

    def essentials(card: dict) -> tuple:
        return (card["metrics"],
                [(t["key"], t["cycle"], t["due_at"], t["done_at"], t["outcome"]) for t in card["tasks"]],
                [(e["task"], e["level"], e["recipient"], e["fired_at"]) for e in card["escalations"]],
                [(e["kind"], e["at"]) for e in card["timeline"]])

    assert essentials(on_pg) == essentials(on_sqlite)
    assert on_pg["metrics"] == on_sqlite["metrics"]
    assert on_pg["metrics"]["escalations_fired"] > 0 and on_pg["incident"]["opened_at"].endswith("+00:00")
    assert datetime.fromisoformat(on_pg["incident"]["opened_at"]).tzinfo is not None


def test_read_models_on_postgresql(pg_svc, clock):
    """crisis.views runs its SQL text on PostgreSQL too (naive UTC timestamps, JSON parsed by the driver)."""
    from helpers import drive_to, open_incident
    from test_records import views_agree_with_the_models

    iid = open_incident(pg_svc)
    drive_to(pg_svc, iid, "responding")
    clock.advance(timedelta(days=2))
    pg_svc.tick()
    views_agree_with_the_models(pg_svc, iid)
