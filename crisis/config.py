"""Where things are: database URL, playbooks, roster, notification file. Environment overrides defaults.

CRISIS_DB_URL, CRISIS_PLAYBOOKS, CRISIS_ROSTER, CRISIS_NOTIFY_FILE, CRISIS_LOG, CRISIS_TZ (the hospital's
time zone: display, quiet hours, rota hand-overs), CRISIS_SIGNALS_SECRET (HMAC secret of inbound signals);
notification channels: see crisis.notify.setup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Engine

from crisis.clock import Clock
from crisis.errors import InputError
from crisis.notify import setup as notify_setup
from crisis.notify.channels import Channel
from crisis.notify.dispatch import Dispatcher
from crisis.notify.setup import NotifySettings
from crisis.playbook import check_roster, load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.store.db import ROOT, default_url
from crisis.store.migrate import open_db, upgrade_db


@dataclass(frozen=True)
class Settings:
    db_url: str
    playbooks_dir: Path
    roster_path: Path
    notify_file: Path
    log_path: Path
    tz: str = "Asia/Shanghai"
    signals_secret: str | None = None  # CRISIS_SIGNALS_SECRET: shared secret of HMAC-signed inbound signals
    notify: NotifySettings = field(default_factory=NotifySettings)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            db_url=default_url(),
            playbooks_dir=Path(env.get("CRISIS_PLAYBOOKS", ROOT / "playbooks")),
            roster_path=Path(env.get("CRISIS_ROSTER", ROOT / "examples" / "roster.yaml")),
            notify_file=Path(env.get("CRISIS_NOTIFY_FILE", ROOT / "store" / "notifications.jsonl")),
            log_path=Path(env.get("CRISIS_LOG", ROOT / "store" / "crisis.log")),
            tz=env.get("CRISIS_TZ", "Asia/Shanghai"),
            signals_secret=env.get("CRISIS_SIGNALS_SECRET") or None,
            notify=NotifySettings.from_env(env),
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)",
                         field="CRISIS_TZ") from None


def build_channels(settings: Settings) -> dict[str, Channel]:
    return notify_setup.channels(settings.notify, settings.notify_file)


def build_dispatcher(settings: Settings, svc: CrisisService, channels: dict[str, Channel] | None = None,
                     clock: Clock | None = None) -> Dispatcher:
    """Delivery for this process: the deployment's channels, text in the hospital's zone, failures paged to
    whoever is on call."""
    return notify_setup.dispatcher(svc.engine, channels if channels is not None else build_channels(settings),
                                   settings.notify, svc.roster, zone(settings.tz), clock or svc.clock,
                                   lambda now: svc.on_call(now).primary)


def build_service(settings: Settings, clock: Clock, *, engine: Engine | None = None) -> CrisisService:
    """Load playbooks and roster (validating them) and open the existing database (upgrading it if behind;
    a missing one is an error: only `crisis db init` creates a database)."""
    playbooks = load_playbooks(settings.playbooks_dir)
    roster = load_roster(settings.roster_path)
    check_roster(playbooks, roster)
    if engine is None:
        engine = open_db(settings.db_url)
    else:
        upgrade_db(engine)
    return CrisisService(engine, playbooks, roster, clock,
                         routing=notify_setup.routing(settings.notify, zone(settings.tz)))
