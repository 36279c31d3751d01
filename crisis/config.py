"""Build the service, its channels and its dispatcher from the settings (crisis.settings reads the
environment; `Settings`, `load_settings` and `zone` are re-exported here for existing imports)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from crisis.clock import Clock
from crisis.notify import setup as notify_setup
from crisis.notify.channels import Channel
from crisis.notify.dispatch import Dispatcher
from crisis.playbook import check_roster, load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.settings import Settings, load_settings, zone
from crisis.store.migrate import open_db, upgrade_db

__all__ = ["Settings", "build_channels", "build_dispatcher", "build_service", "load_settings", "zone"]


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
