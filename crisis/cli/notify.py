"""`crisis outbox`, `crisis oncall …`, `crisis notify test`: what was sent, who is on call, does a channel work."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crisis.cli.common import ByOpt, JsonOpt, app, emit, iso, local, out, principal, run, service, settings, table
from crisis.errors import InputError

if TYPE_CHECKING:  # the engine and its models load when a command runs, not for `crisis --help`
    from crisis.store.models import OutboxMessage

oncall_app = typer.Typer(no_args_is_help=True, help="Who is on call: the rota, overrides, imported shifts.")
notify_app = typer.Typer(no_args_is_help=True, help="Notification channels.")


def _state(m: OutboxMessage) -> str:
    if m.delivered_at:
        return f"delivered {local(m.delivered_at)}"
    if m.failed_at:
        return f"FAILED {local(m.failed_at)}"
    if m.held_until and (m.next_attempt_at or m.held_until) > service().clock.now():
        return f"held until {local(m.held_until)}"
    if m.attempts:
        return f"retry {local(m.next_attempt_at)}"
    return "pending"


@app.command("outbox")
def outbox_cmd(
    failed: Annotated[bool, typer.Option("--failed", help="Only messages given up on after the last attempt.")] = False,
    held: Annotated[bool, typer.Option("--held", help="Only messages held for the recipient's quiet hours.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="The most recent N.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Notifications: delivered, waiting, held for quiet hours, retrying, failed (and why)."""
    def body() -> None:
        rows = service().outbox(failed=failed, held=held, limit=limit)
        if as_json:
            emit([{"id": m.id, "key": m.dedupe_key, "kind": m.kind, "to": m.recipient, "channel": m.channel,
                   "incident": m.incident_id, "created_at": iso(m.created_at), "delivered_at": iso(m.delivered_at),
                   "failed_at": iso(m.failed_at), "held_until": iso(m.held_until),
                   "next_attempt_at": iso(m.next_attempt_at), "attempts": m.attempts, "error": m.last_error,
                   "receipt": m.receipt} for m in rows])
            return
        svc = service()
        t = table("id", "created", "kind", "to", "channel", "state", "tries", "said", wrap=("said",))
        for m in rows:
            t.add_row(str(m.id), local(m.created_at), m.kind, svc.roster.name(m.recipient), m.channel, _state(m),
                      str(m.attempts), m.last_error or m.receipt or "")
        out.print(t)
        if not rows:
            out.print("no messages" + (" failed" if failed else "") + (" held" if held else ""))
    run(body, as_json)


def _at(text: str | None) -> datetime:
    from crisis.config import zone
    from crisis.rota import parse_local

    return service().clock.now() if not text else parse_local(text, zone(settings().tz), where="--at")


@oncall_app.command("show")
def oncall_show(at: Annotated[str | None, typer.Option("--at", help="Local date-time (default now).")] = None,
                as_json: JsonOpt = False) -> None:
    """Who is on call at a moment, who backs them up, since when and until when, and why (rota/override)."""
    def body() -> None:
        svc = service()
        when = _at(at)
        oc = svc.on_call(when)
        shifts = [s for s in svc.shifts(since=when) if s.start < when + timedelta(days=14)]
        if as_json:
            emit({"at": iso(when), "primary": oc.primary, "backup": oc.backup, "since": iso(oc.since),
                  "until": iso(oc.until), "source": oc.source,
                  "shifts": [{"person": s.person, "start": iso(s.start), "until": iso(s.until), "source": s.source,
                              "note": s.note} for s in shifts]})
            return
        out.print(f"on call at {local(when)}: {svc.roster.name(oc.primary)} ({oc.primary}) · backup "
                  f"{svc.roster.name(oc.backup)} · {oc.source} {local(oc.since)} → {local(oc.until)}",
                  markup=False, highlight=False, soft_wrap=True)
        if shifts:
            t = table("from", "until", "person", "source", "note", wrap=("note",))
            for s in shifts:
                t.add_row(local(s.start), local(s.until), svc.roster.name(s.person), s.source, s.note or "")
            out.print(t)
    run(body, as_json)


@oncall_app.command("override")
def oncall_override(
    person: Annotated[str, typer.Argument(help="Who stands in (person id).")],
    start: Annotated[str, typer.Option("--from", help="Local date-time the cover starts.")],
    until: Annotated[str, typer.Option("--until", help="Local date-time it ends.")],
    note: Annotated[str | None, typer.Option(help="Why (swap, holiday, ...).")] = None,
    by: ByOpt = None, as_json: JsonOpt = False,
) -> None:
    """Put someone on call for a window (a swap or holiday cover); it beats the rota while it lasts."""
    def body() -> None:
        from crisis.config import zone
        from crisis.rota import Shift, parse_local

        tz = zone(settings().tz)
        shift = Shift(person, parse_local(start, tz, where="--from"), parse_local(until, tz, where="--until"))
        (row,) = service().add_shifts([shift], principal=principal(by), note=note)
        if as_json:
            emit({"id": row.id, "person": row.person, "start": iso(row.start), "until": iso(row.until)})
        else:
            out.print(f"{row.person} on call {local(row.start)} → {local(row.until)} (override #{row.id})",
                      markup=False, highlight=False)
    run(body, as_json)


@oncall_app.command("import")
def oncall_import(file: Annotated[Path, typer.Argument(help="Shifts as CSV (person,start,end) or iCalendar (.ics).")],
                  by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Import on-call shifts from a spreadsheet export or a calendar; each beats the rota while it lasts."""
    def body() -> None:
        from crisis.config import zone
        from crisis.rota import import_csv, import_ics

        svc, tz = service(), zone(settings().tz)
        data = file.read_bytes()
        if file.suffix.lower() in (".ics", ".ical"):
            shifts = import_ics(data, tz, svc.roster.known_names())
        elif file.suffix.lower() == ".csv":
            try:
                shifts = import_csv(data.decode("utf-8-sig"), tz, svc.roster.known_names())
            except UnicodeDecodeError:
                raise InputError(f"{file}: not UTF-8 text") from None
        else:
            raise InputError(f"{file}: expected a .csv or .ics file", field="FILE")
        rows = svc.add_shifts(shifts, principal=principal(by), note=f"imported from {file.name}")
        if as_json:
            emit({"imported": len(rows)})
        else:
            out.print(f"imported {len(rows)} shift(s) from {file.name}", markup=False, highlight=False)
    run(body, as_json)


@notify_app.command("test")
def notify_test(person: Annotated[str, typer.Argument(help="Person id from the roster.")],
                as_json: JsonOpt = False) -> None:
    """Send one test message through each of the person's channels and report what each answered."""
    results: list[dict[str, object]] = []

    def body() -> None:
        from crisis.config import build_channels, zone
        from crisis.notify.channels import Delivery, DeliveryError
        from crisis.notify.messages import Item

        svc, cfg = service(), settings()
        who = svc.roster.person(person)
        chans = build_channels(cfg)
        now = svc.clock.now()
        renderer = cfg.notify.renderer(svc.roster, zone(cfg.tz))
        for name in who.channels or []:
            if name not in chans:
                results.append({"channel": name, "ok": False, "said": "not configured on this deployment"})
                continue
            text = renderer.render(Item("test", person, {"channel": name}, now, name))
            d = Delivery(dedupe_key=f"test:{person}:{name}:{now.isoformat()}", channel=name, kind="test",
                         recipient=person, person=who, subject=text.subject, text=text.text, markdown=text.markdown,
                         incident_id=None, created_at=now)
            try:
                results.append({"channel": name, "ok": True, "said": chans[name].deliver(d)})
            except DeliveryError as exc:
                results.append({"channel": name, "ok": False, "said": str(exc)})
        if not who.channels:
            raise InputError(f"{person} has no channels in the roster (add `channels: [email, wecom, ...]`)")
        if as_json:
            emit(results)
            return
        for r in results:
            out.print(f"{r['channel']}: {'ok' if r['ok'] else 'FAILED'} · {r['said']}", markup=False, highlight=False)
    run(body, as_json)
    if any(not r["ok"] for r in results):
        raise typer.Exit(1)
