"""Shared fixtures: a CrisisService on a fresh SQLite file, driven by a VirtualClock."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import PLAYBOOKS_DIR, ROSTER_PATH, START, migrated_copy
from sqlalchemy.engine import Engine

from crisis import logs
from crisis.clock import VirtualClock
from crisis.playbook import PlaybookSet, load_playbooks
from crisis.roster import Roster, load_roster
from crisis.service import CrisisService
from crisis.store.db import make_engine


@pytest.fixture(autouse=True)
def _quiet_logs():
    """Audit log lines go to a buffer instead of stderr."""
    logs.configure(io.StringIO())
    yield


@pytest.fixture(scope="session")
def playbooks() -> PlaybookSet:
    return load_playbooks(PLAYBOOKS_DIR)


@pytest.fixture(scope="session")
def roster() -> Roster:
    return load_roster(ROSTER_PATH)


@pytest.fixture()
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database made by the migrations, to copy (running them costs ~0.2 s)."""
    return migrated_copy(tmp_path_factory.mktemp("template") / "crisis.db")


@pytest.fixture()
def engine(tmp_path: Path, migrated_db: Path) -> Engine:
    shutil.copyfile(migrated_db, tmp_path / "crisis.db")
    eng = make_engine(f"sqlite:///{tmp_path / 'crisis.db'}")
    yield eng
    eng.dispose()


@pytest.fixture()
def svc(engine: Engine, playbooks: PlaybookSet, roster: Roster, clock: VirtualClock) -> CrisisService:
    return CrisisService(engine, playbooks, roster, clock)


@pytest.fixture()
def advance(clock: VirtualClock) -> Callable[..., datetime]:
    """advance(minutes=5) / advance(timedelta(...)): move the virtual clock forward, return the new now."""

    def _advance(delta: timedelta | None = None, **kw: float) -> datetime:
        clock.advance(delta if delta is not None else timedelta(**kw))
        return clock.now()

    return _advance
