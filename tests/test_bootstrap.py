"""crisis.bootstrap: the service comes with its delivery, so every adapter sends notifications the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from helpers import PLAYBOOKS_DIR, ROSTER_PATH, migrated_copy

from crisis.bootstrap import build_service
from crisis.clock import VirtualClock
from crisis.principal import Principal
from crisis.settings import Settings

NOW = datetime(2026, 3, 14, 13, 0, tzinfo=UTC)


def settings_in(tmp_path: Path, notify_file: Path) -> Settings:
    db = migrated_copy(tmp_path / "crisis.db")
    return Settings(db_url=f"sqlite:///{db}", playbooks_dir=PLAYBOOKS_DIR, roster_path=ROSTER_PATH,
                    notify_file=notify_file, log_path=tmp_path / "crisis.log")


def duty(svc) -> Principal:  # type: ignore[no-untyped-def]
    return Principal(person=svc.roster.roles["duty_officer"], auth="cli")


def test_service_delivers_after_each_command(tmp_path: Path) -> None:
    notify_file = tmp_path / "n.jsonl"
    svc = build_service(settings_in(tmp_path, notify_file), VirtualClock(NOW), deliver=True)
    svc.open_incident(title="t", category="medical_dispute", principal=duty(svc))
    assert notify_file.exists() and notify_file.read_text("utf-8").strip()  # sent without any adapter's help


def test_without_delivery_nothing_is_sent_and_failures_are_reported_not_raised(tmp_path: Path) -> None:
    quiet = build_service(settings_in(tmp_path, tmp_path / "q.jsonl"), VirtualClock(NOW))
    quiet.open_incident(title="t", category="medical_dispute", principal=duty(quiet))
    assert not (tmp_path / "q.jsonl").exists()  # the scheduler's service: it delivers on its own thread

    (tmp_path / "a-file").write_text("x")
    heard: list[str] = []
    other = tmp_path / "other"
    other.mkdir()
    svc = build_service(settings_in(other, tmp_path / "a-file" / "n.jsonl"), VirtualClock(NOW), deliver=True,
                        on_failure=heard.append)
    inc = svc.open_incident(title="t", category="medical_dispute", principal=duty(svc))
    assert inc.id is not None and heard and "stay queued" in heard[0]  # committed, failure told once
