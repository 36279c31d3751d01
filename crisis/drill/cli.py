"""The `crisis drill run` command body: run, print timeline and scorecard, write reports."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from crisis import logs
from crisis.clock import SystemClock
from crisis.config import Settings, zone
from crisis.console import styled, table
from crisis.drill.runner import drill_db_url, run_drill
from crisis.drill.scenario import LoadedScenario, load_scenario
from crisis.durations import format_duration
from crisis.labels import label
from crisis.playbook import PlaybookSet, check_roster, load_playbooks
from crisis.roster import Roster, load_roster
from crisis.store.db import ROOT, make_engine, sqlite_path


def load_checked(scenario_path: Path, settings: Settings) -> tuple[LoadedScenario, PlaybookSet, Roster]:
    """The scenario with the playbooks and roster it runs on, every name cross-checked before anything runs."""
    loaded = load_scenario(scenario_path)
    playbooks = load_playbooks(settings.playbooks_dir)
    roster = load_roster(loaded.roster_path() or settings.roster_path)
    check_roster(playbooks, roster)
    loaded.check_against(playbooks, roster)
    return loaded, playbooks, roster


def run_drill_command(scenario_path: Path, *, speed: float | None, out_dir: Path | None, db_url: str | None,
                      tz: str, as_json: bool, settings: Settings, console: Console) -> dict[str, Any]:
    zone(tz)  # a bad time zone fails before anything is replayed or written
    loaded, playbooks, roster = load_checked(scenario_path, settings)
    sc = loaded.scenario
    wall = SystemClock()
    run_id = f"{sc.name}-{wall.now():%Y%m%d-%H%M%S-%f}"
    out_dir = out_dir or ROOT / "reports" / "drills" / run_id
    made_db = None if db_url else sqlite_path(db_url := drill_db_url(ROOT / "store", run_id))
    with _cleanup_on_failure(out_dir, made_db):
        logs.configure(out_dir / "audit.log")
        return _replay(loaded, playbooks, roster, run_id=run_id, out_dir=out_dir, db_url=db_url, speed=speed,
                       tz=tz, as_json=as_json, scenario_path=scenario_path, console=console, wall=wall)


@contextlib.contextmanager
def _cleanup_on_failure(out_dir: Path, made_db: Path | None) -> Iterator[None]:
    """Create the reports folder; if the drill then fails, remove it and the drill database this run made, so a
    failed run leaves nothing behind (a folder that existed before, or a database given with --db, stay)."""
    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        logs.configure(None)  # release the audit log file before its folder goes
        if not existed:
            shutil.rmtree(out_dir, ignore_errors=True)
        for suffix in ("", "-wal", "-shm") if made_db else ():
            made_db.with_name(made_db.name + suffix).unlink(missing_ok=True)  # type: ignore[union-attr]
        raise


def _replay(loaded: LoadedScenario, playbooks: PlaybookSet, roster: Roster, *, run_id: str, out_dir: Path,
            db_url: str, speed: float | None, tz: str, as_json: bool, scenario_path: Path, console: Console,
            wall: SystemClock) -> dict[str, Any]:
    from crisis import reports

    sc = loaded.scenario

    def live(when: datetime, text: str) -> None:
        offset = format_duration(when - sc.start)
        console.print(f"[dim]T+{offset:>7}[/] {when.astimezone(zone(tz)):%m-%d %H:%M}  {escape(text)}", highlight=False)

    started = wall.monotonic()
    result = run_drill(loaded, engine=make_engine(db_url), playbooks=playbooks, roster=roster, speed=speed,
                       on_event=live if (speed and not as_json) else None)
    elapsed = wall.monotonic() - started
    simulated = sc.duration.total_seconds()
    run = {"id": run_id, "mode": "speed" if speed else "instant", "speed": speed, "wall_seconds": round(elapsed, 4),
           "simulated_seconds": simulated, "db": db_url, "reports_dir": str(out_dir)}
    scenario = {"name": sc.name, "title_zh": sc.title.zh, "title_en": sc.title.en, "file": str(scenario_path),
                "start": sc.start.isoformat(), "duration_seconds": simulated, "category": sc.incident.category}
    assert result.service is not None
    ctx = reports.report_context(result.service, result.incident_id, scenario=scenario, run=run, tz=tz,
                                 expectations=sc.expectations())
    written = reports.write_context(ctx, out_dir)
    (out_dir / "notifications.jsonl").write_text(
        "".join(json.dumps(n, ensure_ascii=False) + "\n" for n in result.notifications), encoding="utf-8")
    card = reports.document(ctx)  # the same keys as scorecard.json and `crisis report --json`
    if as_json:
        print(json.dumps(card, ensure_ascii=False, indent=2, default=str))
    else:
        print_summary(console, card, [*written, out_dir / "notifications.jsonl"], zone(tz))
    return card


def print_summary(console: Console, card: dict[str, Any], written: list[Path], tz: tzinfo) -> None:
    sc, run, m = card["scenario"], card["run"], card["metrics"]
    console.rule()
    console.print(f"{sc['title_zh']} / {sc['title_en']}", style="bold", markup=False)
    # local clock time next to the drill offset; task titles and names instead of keys (crisis.narrative)
    tl = table("T+", "time", "who", "what", "detail", title="Timeline", wrap=("what", "detail"))
    for ev in card["timeline"]:
        if ev["kind"] in ("task_assigned", "task_cancelled"):
            continue
        tl.add_row(format_duration(ev["offset_seconds"]), _hm(ev["at"], tz), ev["who"]["zh"], ev["kind"],
                   ev["what"]["zh"])
    console.print(tl)
    tt = table("stage", "group", "task", "assignee", "due", "done", "late by", "esc", "outcome", title="Tasks",
               wrap=("group", "task"))
    for t in card["tasks"]:
        colour = {"on_time": "green", "late": "yellow", "missed": "red", "open": "red"}.get(t["outcome"], "dim")
        tt.add_row(t["stage"], label("group", t["group"], "zh-CN"), t["title"], t["assignee_name"],
                   _hm(t["due_at"], tz), _hm(t["done_at"], tz),
                   format_duration(t["late_seconds"]) if t["late_seconds"] else "-", str(t["escalations"]),
                   styled(t["outcome"], colour))
    console.print(tt)
    if card["expectations"]:
        et = table("expectation", "value", "limit", "status", title="Expectations", wrap=("expectation",))
        for e in card["expectations"]:
            et.add_row(e["name"], format_duration(e["value_seconds"]), format_duration(e["within_seconds"]),
                       e["status"])
        console.print(et)
    console.print(
        f"time to report {format_duration(m['time_to_report_seconds'])} · to assessment "
        f"{format_duration(m['time_to_assessment_seconds'])} · to first statement "
        f"{format_duration(m['time_to_first_statement_seconds'])}\n"
        f"tasks {m['tasks_total']}: on time {m['tasks_on_time']}, late {m['tasks_late']}, missed {m['tasks_missed']}, "
        f"open {m['tasks_open']} · escalated tasks {m['escalation_chains']} (answered {m['chains_answered']}, "
        f"unanswered {m['chains_unanswered']}, reached on-call {m['chains_reached_on_call']}; "
        f"{m['escalations_fired']} reminders) · final stage {m['final_stage']}"
        + (f" · expectation score {m['expectation_score']}%" if "expectation_score" in m else ""))
    console.print(f"replayed {format_duration(run['simulated_seconds'])} of drill time in {run['wall_seconds']:.3f} s "
                  f"({run['mode']}); database {run['db']}", soft_wrap=True)
    console.print(f"reports written to [bold]{escape(run['reports_dir'])}[/]:", soft_wrap=True)
    for p in written:
        console.print(f"  {escape(str(p))}", soft_wrap=True, highlight=False)


def _hm(iso: str | None, tz: tzinfo) -> str:
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%m-%d %H:%M") if iso else "-"
