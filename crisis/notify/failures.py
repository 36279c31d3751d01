"""What happens to outbox rows whose delivery failed: retried with backoff until the policy's last attempt,
then failed for good (the row stays visible with its error) and handed over: to the recipient's next own
channel if one is left (`payload["_then"]`), else as a page to the on-call administrator. A failed page about a
failure is not paged about again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from crisis.notify.outbox import Routing, messages
from crisis.roster import Roster
from crisis.store.tables import OUTBOXMESSAGE as T

if TYPE_CHECKING:
    from crisis.notify.dispatch import Policy

Row = Mapping[str, Any]


def record(conn: Connection, rows: list[Row], error: str, now: datetime, policy: Policy,
           follow_up: Callable[[Row, str, datetime], list[dict[str, Any]]]) -> tuple[int, int]:
    """Record a failed delivery of `rows`; (how many will be retried, how many failed for good)."""
    retrying = failed = 0
    for r in rows:
        attempts = r["attempts"]  # counted when claimed (and written, for drain_inline's unleased rows)
        if attempts < policy.max_attempts:
            retrying += 1
            conn.execute(update(T).where(T.c.id == r["id"]).values(
                next_attempt_at=policy.retry_at(now, attempts), claimed_until=None, last_error=error[:500],
                attempts=attempts))
            continue
        failed += 1
        conn.execute(update(T).where(T.c.id == r["id"]).values(failed_at=now, claimed_until=None,
                                                                last_error=error[:500], attempts=attempts))
        follow = follow_up(r, error, now)
        if follow:
            _insert_new(conn, follow)
    return retrying, failed


def follow_up(r: Row, error: str, now: datetime, *, on_call: Callable[[datetime], str] | None, roster: Roster,
              routing: Routing) -> list[dict[str, Any]]:
    """After the last attempt: the recipient's next own channel, else a page to the on-call admin."""
    facts = dict(r["payload"])
    then = list(facts.pop("_then", []) or [])
    if then:
        base = r["dedupe_key"].rsplit(":", 1)[0]
        return [{**_copy(r), "dedupe_key": f"{base}:{then[0]}", "channel": then[0],
                 "payload": {**facts, "_then": then[1:]}, "next_attempt_at": now, "held_until": None}]
    if r["kind"] == "delivery_failed" or on_call is None:
        return []  # a failed fallback page is not paged about again: it stays visible as failed
    admin = on_call(now)
    return messages(kind="delivery_failed", key=f"failed:{r['id']}", recipient=admin,
                    incident_id=r["incident_id"], now=now, roster=roster, routing=routing,
                    facts={"message": r["id"], "channel": r["channel"], "recipient": r["recipient"],
                           "original": r["kind"], "error": error[:300], "incident": r["incident_id"]})


def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert follow-up rows, skipping a dedupe key already queued (a second failure report changes nothing)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(T).on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)
    else:
        conn.execute(insert(T).prefix_with("OR IGNORE"), rows)


def _copy(r: Row) -> dict[str, Any]:
    return {k: r[k] for k in ("recipient", "kind", "urgent", "incident_id", "created_at")} | {
        "subject": "", "body": "", "attempts": 0}
