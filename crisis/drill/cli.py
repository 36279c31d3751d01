"""The `crisis drill run` command body: run, print timeline and scorecard, write reports."""

from __future__ import annotations

import collections
import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy import event
from sqlalchemy.engine import Engine

from crisis import jsonout, logs
from crisis.clock import SystemClock
from crisis.config import Settings, zone
from crisis.console import styled, table
from crisis.drill.runner import DrillResult, drill_db_url, rarer_collections, run_drills
from crisis.drill.scenario import MAIN, LoadedScenario, load_scenario
from crisis.drill.writer import Job, Writer, read_rows, report_writer
from crisis.durations import format_duration
from crisis.errors import InputError
from crisis.labels import label
from crisis.playbook import PlaybookSet, check_roster, load_playbooks
from crisis.roster import Roster, load_roster
from crisis.store.db import make_engine, sqlite_path

FULL_SUMMARY_MAX = 3  # up to this many incidents each prints its timeline and tables; more, one line each


def load_checked(scenario_path: Path, settings: Settings) -> tuple[LoadedScenario, PlaybookSet, Roster]:
    """The scenario with the playbooks and roster it runs on, every name cross-checked before anything runs."""
    loaded = load_scenario(scenario_path)
    playbooks = load_playbooks(settings.playbooks_dir)
    roster = load_roster(loaded.roster_path() or settings.roster_path)
    check_roster(playbooks, roster)
    loaded.check_against(playbooks, roster)
    return loaded, playbooks, roster


def scenario_files(paths: list[Path]) -> list[Path]:
    """The scenario files named, a folder standing for its *.yaml / *.yml files in name order."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                raise InputError("no scenarios (*.yaml) in folder", file=str(p))
            files += found
        else:
            files.append(p)
    if not files:
        raise InputError("name at least one scenario file or folder")
    return files


def load_all(paths: list[Path], settings: Settings) -> tuple[list[LoadedScenario], PlaybookSet, Roster]:
    """Several scenarios replayed together: loaded and cross-checked first, on one shared roster."""
    checked = [load_checked(f, settings) for f in scenario_files(paths)]
    first = checked[0][0]
    for loaded, _, _ in checked[1:]:
        if loaded.roster_path() != first.roster_path():
            raise InputError(f"scenarios replayed together share one roster; this one names {loaded.scenario.roster}"
                             f" but {first.path} names {first.scenario.roster}", file=str(loaded.path))
    return [c[0] for c in checked], checked[0][1], checked[0][2]


def run_drill_command(scenario_paths: Path | list[Path], *, speed: float | None, out_dir: Path | None,
                      db_url: str | None, tz: str, as_json: bool, settings: Settings, console: Console,
                      formats: tuple[str, ...] = ("md",)) -> Any:
    """Replay one or several scenarios (files or folders) on one clock. One incident: its card, reports in
    `out_dir`. Several: a list of cards, each incident's reports in a subfolder named after it."""
    zone(tz)  # a bad time zone fails before anything is replayed or written
    paths = scenario_paths if isinstance(scenario_paths, list) else [scenario_paths]
    scenarios, playbooks, roster = load_all(paths, settings)
    wall = SystemClock()
    label = scenarios[0].scenario.name if len(scenarios) == 1 else f"{scenarios[0].scenario.name}+{len(scenarios) - 1}"
    run_id = f"{label}-{wall.now():%Y%m%d-%H%M%S-%f}"
    out_dir = out_dir or settings.drills_dir / run_id
    made_db = None if db_url else sqlite_path(db_url := drill_db_url(settings.home / "store", run_id))
    with _cleanup_on_failure(out_dir, made_db):
        logs.configure(out_dir / "audit.log")
        return replay([(ls, timedelta(0)) for ls in scenarios], playbooks, roster, run_id=run_id, out_dir=out_dir,
                      db_url=db_url, speed=speed, tz=tz, as_json=as_json, console=console, wall=wall,
                      formats=formats, scratch=made_db is not None)


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


def replay(tracks: list[tuple[LoadedScenario, timedelta]], playbooks: PlaybookSet, roster: Roster, *, run_id: str,
           out_dir: Path, db_url: str, speed: float | None, tz: str, as_json: bool, console: Console,
           wall: SystemClock, formats: tuple[str, ...] = ("md",), scratch: bool = False) -> Any:
    """Replay scenarios (each shifted by its offset: the CLI gives none, the benchmark staggers copies) and
    write each incident's reports, scorecard and notifications when its scenario ends; returns the card(s) (of a
    replay printing one line per incident, without --json: each card's summary, writer.summary). `scratch`: the
    database is the drill's own new file (not one given with --db), see `drill_engine`."""
    origin = min(ls.scenario.start + offset for ls, offset in tracks)

    def live(when: datetime, text: str) -> None:
        offset = format_duration(when - origin)
        console.print(f"[dim]T+{offset:>7}[/] {when.astimezone(zone(tz)):%m-%d %H:%M}  {escape(text)}", highlight=False)

    started = wall.monotonic()
    by_result: dict[int, dict[str, Any]] = {}
    count = sum(len(ls.scenario.specs()) for ls, _ in tracks)
    several, brief = count > 1, count > FULL_SUMMARY_MAX
    folders: set[str] = set()
    pending: collections.deque[tuple[DrillResult, Future[tuple[dict[str, Any], list[Path]]]]] = collections.deque()

    def write(result: DrillResult) -> None:  # at the incident's scenario end: its record as the drill left it
        folder = out_dir / _folder_name(result, folders) if several else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        pending.append((result, _write_one(result, run_id=run_id, out_dir=folder, db_url=db_url, speed=speed, tz=tz,
                                           elapsed=wall.monotonic() - started, formats=formats, writer=writer,
                                           summary_only=brief and not as_json)))
        show(everything=False)

    def show(everything: bool) -> None:  # each incident's summary once its files are written, in the order it ended
        while pending and (everything or pending[0][1].done()):
            result, future = pending.popleft()
            card, written = future.result()
            by_result[id(result)] = card
            if not as_json:
                print_summary(console, card, written, zone(tz), brief=brief)

    engine = drill_engine(db_url, scratch, paced=bool(speed))
    with report_writer(brief and not speed, roster, playbooks) as writer, rarer_collections():  # many: a worker
        results = run_drills(tracks, engine=engine, playbooks=playbooks, roster=roster, speed=speed,
                             on_event=live if (speed and not as_json) else None, on_finish=write, score=False)
        keep_database(engine, db_url)
    show(everything=True)
    cards = [by_result[id(r)] for r in results]  # in scenario order, whenever each ended
    if brief and not as_json:
        console.print(f"{count} incidents: full timelines, task tables, scorecards and reports written to "
                      f"[bold]{escape(str(out_dir))}[/] (one folder per incident)", soft_wrap=True)
    if as_json:
        print(jsonout.dumps(cards[0] if not several else cards))
    return cards[0] if not several else cards


def drill_engine(db_url: str, scratch: bool, *, paced: bool = False) -> Engine:
    """The drill's engine. The drill's own scratch SQLite file never waits for the disk: the replay can be run
    again, so an OS crash that loses its last commits costs nothing. An instant replay runs in memory and
    `keep_database` writes the file once at the end (its ~8,000 commits wrote ~200 MB of WAL frames and took
    54,000 file locks in a 100-incident surge, a tenth of its CPU; it lasts seconds, nobody watches it). A paced
    one (--speed) keeps its file, synchronous=OFF and WAL, so the board or `crisis show` can follow it and a
    reader never blocks the replay (the checkpoints' fsyncs were ~10 % of a surge's CPU). A database given with
    --db keeps the engine's usual durability."""
    if scratch and not paced and sqlite_path(db_url) is not None:
        return make_engine("sqlite://")  # one connection per thread: a drill delivers in its own thread
    engine = make_engine(db_url)
    if scratch and engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _no_sync)
    return engine


def keep_database(engine: Engine, db_url: str) -> None:
    """Write a drill replayed in memory to its file (WAL, as every crisis SQLite file) with SQLite's backup."""
    path = sqlite_path(db_url)
    if path is None or engine.dialect.name != "sqlite" or sqlite_path(str(engine.url)) is not None:
        return  # it ran on its file, or on a database given with --db
    source = engine.raw_connection()
    try:
        target = sqlite3.connect(path)
        try:
            source.driver_connection.backup(target)  # type: ignore[union-attr]
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    finally:
        source.close()  # back to the pool: the in-memory database stays readable while the engine lives


def _no_sync(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=OFF")


def _folder_name(result: DrillResult, taken: set[str]) -> str:
    """The incident's reports folder: its scenario's name (and its name in a surge scenario); a scenario
    replayed twice in one run gets its incident number too, so no incident's reports overwrite another's."""
    assert result.loaded is not None
    name = result.loaded.scenario.name
    name = name if result.name == MAIN else f"{name}-{result.name}"
    if name in taken:
        name = f"{name}-{result.incident_id}"
    taken.add(name)
    return name


def _write_one(result: DrillResult, *, run_id: str, out_dir: Path, db_url: str, speed: float | None, tz: str,
               elapsed: float, formats: tuple[str, ...], writer: Writer,
               summary_only: bool = False) -> Future[tuple[dict[str, Any], list[Path]]]:
    """Have the incident scored and its files written (here, or by the report worker) from its rows as they stand
    at its scenario's end; its report document (or its summary: see writer.summary) and the paths written, when
    done."""
    assert result.loaded is not None and result.service is not None
    sc = result.loaded.scenario
    spec = sc.specs()[result.name]
    simulated = sc.duration.total_seconds()
    run = {"id": run_id, "mode": "speed" if speed else "instant", "speed": speed, "wall_seconds": round(elapsed, 4),
           "simulated_seconds": simulated, "db": db_url, "reports_dir": str(out_dir)}
    scenario = {"name": sc.name, "title_zh": sc.title.zh, "title_en": sc.title.en, "file": str(result.loaded.path),
                "start": sc.start.isoformat(), "duration_seconds": simulated, "category": spec.category,
                "incident": result.name}
    zone(tz)  # a bad zone fails here, before anything is written
    notifications = "".join(json.dumps(n, ensure_ascii=False) + "\n" for n in result.notifications)
    svc = result.service
    return writer.write(Job(read_rows(svc.engine, result.incident_id), sc.expectations(result.name), scenario, run,
                            tz, svc.clock.now(), out_dir, formats, notifications, summary_only))


def print_summary(console: Console, card: dict[str, Any], written: list[Path], tz: tzinfo, *,
                  brief: bool = False) -> None:
    """The incident's timeline, tasks, expectations and figures; `brief` (a replay of many incidents, where a
    hundred full timelines would be thousands of lines) one line instead, its full record being in its folder."""
    sc, run, m = card["scenario"], card["run"], card["metrics"]
    if brief:
        console.print(_brief_line(card), soft_wrap=True, highlight=False, markup=False)
        return
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


def _brief_line(card: dict[str, Any]) -> str:
    """One incident of a large replay: what it was, how it ended, how its tasks went, and its reports folder."""
    inc, m = card["incident"], card["metrics"]
    return (f"#{inc['id']} {inc['title']} · {inc['category']} · grade {inc['severity']} · "
            f"final stage {m['final_stage']} · tasks on time {m['tasks_on_time']}, late {m['tasks_late']}, "
            f"missed {m['tasks_missed']}, open {m['tasks_open']} · escalations {m['escalations_fired']} · "
            f"{Path(card['run']['reports_dir']).name}/")


def _hm(iso: str | None, tz: tzinfo) -> str:
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%m-%d %H:%M") if iso else "-"
