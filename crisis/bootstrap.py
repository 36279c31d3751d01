"""Bootstrap: the service with its delivery, its channels and its dispatcher, built from the settings
(crisis.settings reads the environment). Every adapter starts here, so CLI and HTTP deliver the same way."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from crisis.clock import Clock
from crisis.notify import setup as notify_setup
from crisis.notify.channels import Channel
from crisis.notify.dispatch import Dispatcher
from crisis.playbook import check_roster, load_playbooks
from crisis.roster import load_roster
from crisis.service import CrisisService
from crisis.settings import Settings, zone
from crisis.store.migrate import open_db, upgrade_db


def build_channels(settings: Settings) -> dict[str, Channel]:
    return notify_setup.channels(settings.notify, settings.notify_file)


def build_dispatcher(settings: Settings, svc: CrisisService, channels: dict[str, Channel] | None = None,
                     clock: Clock | None = None) -> Dispatcher:
    """Delivery for this process: the deployment's channels, text in the hospital's zone, failures paged to
    whoever is on call."""
    return notify_setup.dispatcher(svc.engine, channels if channels is not None else build_channels(settings),
                                   settings.notify, svc.roster, zone(settings.tz), clock or svc.clock,
                                   lambda now: svc.on_call(now).primary)


def build_service(settings: Settings, clock: Clock, *, engine: Engine | None = None, deliver: bool = False,
                  on_failure: Callable[[str], None] | None = None) -> CrisisService:
    """Load playbooks and roster (validating them) and open the existing database (upgrading it if behind;
    a missing one is an error: only `crisis db init` creates a database).

    With `deliver`, the service sends what each committed command queued through this deployment's channels
    (crisis.service.base `after_commit`); `on_failure` hears one line per notification that failed (it stays
    queued for the scheduler's retry). Without it (the scheduler, which delivers on its own thread) nothing
    is sent after commands."""
    playbooks = load_playbooks(settings.playbooks_dir, settings.cache_dir)
    roster = load_roster(settings.roster_path, settings.cache_dir)
    check_roster(playbooks, roster)
    if engine is None:
        engine = open_db(settings.db_url)
    else:
        upgrade_db(engine)
    svc = CrisisService(engine, playbooks, roster, clock,
                        routing=notify_setup.routing(settings.notify, zone(settings.tz)))
    if deliver:
        svc.after_commit = delivery_after_commands(settings, svc, on_failure or (lambda _line: None))
    return svc


def delivery_after_commands(settings: Settings, svc: CrisisService,
                            on_failure: Callable[[str], None]) -> Callable[[], None]:
    """Drain the outbox once a command has committed. The command stands whatever happens here: a channel
    that fails, or cannot even be set up, is reported through `on_failure` and left to the scheduler."""
    dispatcher: list[Dispatcher] = []

    def deliver() -> None:
        try:
            if not dispatcher:
                dispatcher.append(build_dispatcher(settings, svc))
            stats = dispatcher[0].drain()
        except Exception as exc:  # e.g. a notification file under a file
            on_failure(f"notifications not delivered now ({type(exc).__name__}: {exc}); they stay queued for "
                       f"the scheduler")
            return
        for channel, recipient, error in stats.failures:
            on_failure(f"notification to {recipient} via {channel} failed ({error}); it stays queued and the "
                       f"scheduler retries it")

    return deliver
