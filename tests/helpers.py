"""Constants and helpers shared by the tests (import them: `from helpers import ...`; fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crisis.principal import Principal
from crisis.roster import Roster
from crisis.service import CrisisService
from crisis.store.models import Task

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS_DIR = ROOT / "playbooks"
ROSTER_PATH = ROOT / "examples" / "roster.yaml"
DRILLS_DIR = ROOT / "examples" / "drills"
START = datetime(2026, 3, 14, 13, 0, tzinfo=UTC)
CATEGORY = "medical_dispute"


_TEMPLATE: list[Path] = []


def migrated_copy(dest: Path) -> Path:
    """A database as `crisis db init` makes it, at `dest` (a copy of one made once per test run: fast)."""
    if not _TEMPLATE:
        import atexit
        import tempfile

        from crisis.store.db import make_engine
        from crisis.store.migrate import create_db

        folder = tempfile.mkdtemp(prefix="crisis-template-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "crisis.db"
        engine = make_engine(f"sqlite:///{path}")
        create_db(engine)
        engine.dispose()  # the last connection closing checkpoints the WAL into the file
        _TEMPLATE.append(path)
    shutil.copyfile(_TEMPLATE[0], dest)
    return dest


def crisis_env(tmp_path: Path, playbooks_dir: Path = PLAYBOOKS_DIR, *, db: bool = True) -> dict[str, str]:
    """The CRISIS_* variables of a CLI or scheduler process whose database, notifications and log live in tmp_path.
    With `db` (the default) the database exists already, as after `crisis db init`."""
    if db and not (tmp_path / "crisis.db").exists():
        migrated_copy(tmp_path / "crisis.db")
    return {
        "CRISIS_HOME": str(tmp_path),  # drill databases and reports by default: never the project's store/
        "CRISIS_DB_URL": f"sqlite:///{tmp_path / 'crisis.db'}",
        "CRISIS_PLAYBOOKS": str(playbooks_dir),
        "CRISIS_ROSTER": str(ROSTER_PATH),
        "CRISIS_NOTIFY_FILE": str(tmp_path / "notifications.jsonl"),
        "CRISIS_LOG": str(tmp_path / "crisis.log"),
    }


class Cli:
    """The `crisis` command line run in-process (typer's runner) on the environment `crisis_env` describes.

    `cli("list")` asserts the exit code (`code=`, default 0) and returns the result; `cli.json(...)` adds --json
    and parses stdout; `cli.tmp` is the folder holding the database, notification file and log."""

    def __init__(self, tmp_path: Path) -> None:
        from typer.testing import CliRunner

        self.tmp, self.runner = tmp_path, CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        from crisis import cli
        from crisis.cli import common

        common._state.clear()
        before = cli.only(cli.invoked(list(args)))  # as `crisis` runs: only the invoked command is built
        try:
            result = self.runner.invoke(cli.app, list(args))
        finally:
            if before is not None:
                cli.app.registered_commands, cli.app.registered_groups = before
        assert result.exit_code == code, (result.output, result.exception)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "call") -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than `seconds` (main thread, POSIX)."""

    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"{what} took longer than {seconds}s")

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- roster helpers
def leader(roster: Roster) -> str:
    """A leadership member (the head)."""
    return roster.leadership_head()


def group_members(roster: Roster, group: str) -> list[str]:
    return list(roster.groups[group].everyone)


def outsider(roster: Roster, *groups: str) -> str:
    """A roster member in none of `groups` (default: not in leadership)."""
    groups = groups or ("leadership",)
    for p in roster.people:
        if not any(p.id in roster.groups[g].everyone for g in groups):
            return p.id
    raise LookupError(f"everyone is in {groups}")


def non_leader(roster: Roster) -> str:
    """A roster member outside leadership who may still act (the duty officer)."""
    pid = roster.roles["duty_officer"]
    assert not roster.is_leadership(pid)
    return pid


def role(roster: Roster, name: str) -> str:
    return roster.roles[name]


# --------------------------------------------------------------------------- service helpers
def by(person: str) -> Principal:
    """The principal a duty officer's shell builds for `--by person`."""
    return Principal(person=person, auth="cli")


def open_incident(svc: CrisisService, *, severity: str | None = "II", **kw) -> int:
    kw.setdefault("title", "患者家属网络发帖")
    kw.setdefault("category", CATEGORY)
    kw.setdefault("principal", by(svc.roster.roles["duty_officer"]))
    inc = svc.open_incident(severity=severity, **kw)
    assert inc.id is not None
    return inc.id


def stage_tasks(svc: CrisisService, incident_id: int, stage: str | None = None) -> list[Task]:
    inc = svc.incident(incident_id)
    stage = stage or inc.stage
    return [t for t in svc.tasks(incident_id) if t.stage == stage and t.cycle == inc.cycle]


def finish_stage(svc: CrisisService, incident_id: int, *, actor: str | None = None) -> None:
    """Complete every open required task of the current stage (by leadership, allowed for any group)."""
    actor = actor or svc.roster.leadership_head()
    for t in stage_tasks(svc, incident_id):
        if t.status == "open" and t.required:
            svc.complete_task(t.id, principal=by(actor))


def go(svc: CrisisService, incident_id: int, trigger: str, **kw) -> str:
    """Finish the stage's required tasks, then fire the trigger as leadership; returns the new stage."""
    finish_stage(svc, incident_id)
    kw.setdefault("principal", by(svc.roster.leadership_head()))
    return svc.fire(incident_id, trigger, **kw).stage


PATH_TO = {
    "monitoring": [],
    "reported": [("report", {})],
    "assessing": [("report", {}), ("assess", {"decision": "activate"})],
    "watch": [("report", {}), ("assess", {"decision": "watch"})],
    "dismissed": [("report", {}), ("assess", {"decision": "dismiss"})],
    "responding": [("report", {}), ("assess", {"decision": "activate"}), ("respond", {})],
    "media_liaison": [("report", {}), ("assess", {"decision": "activate"}), ("respond", {}), ("media", {})],
    "onsite": [("report", {}), ("assess", {"decision": "activate"}), ("respond", {}), ("media", {}),
               ("onsite", {})],
    "follow_up": [("report", {}), ("assess", {"decision": "activate"}), ("respond", {}), ("media", {}),
                  ("onsite", {}), ("follow_up", {})],
    "closed": [("report", {}), ("assess", {"decision": "activate"}), ("respond", {}), ("media", {}),
               ("onsite", {}), ("follow_up", {}), ("close", {})],
}


def drive_to(svc: CrisisService, incident_id: int, stage: str) -> None:
    """Walk an incident to `stage` along the main path, completing required tasks on the way."""
    for trigger, kw in PATH_TO[stage]:
        go(svc, incident_id, trigger, **kw)
    assert svc.incident(incident_id).stage == stage
