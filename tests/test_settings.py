"""crisis.settings: the one reader of the environment; bad values are InputErrors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from crisis.errors import InputError
from crisis.settings import SOURCE, load_settings


def test_environment_sets_every_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRISIS_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("CRISIS_PLAYBOOKS", str(tmp_path / "pb"))
    monkeypatch.setenv("CRISIS_ROSTER", str(tmp_path / "r.yaml"))
    monkeypatch.setenv("CRISIS_NOTIFY_FILE", str(tmp_path / "n.jsonl"))
    monkeypatch.setenv("CRISIS_LOG", str(tmp_path / "c.log"))
    monkeypatch.setenv("CRISIS_TZ", "Europe/Paris")
    monkeypatch.setenv("CRISIS_SIGNALS_SECRET", "s3")
    monkeypatch.setenv("CRISIS_USER", "wang")
    monkeypatch.setenv("CRISIS_PUBLIC_URL", "https://crisis.example")
    monkeypatch.setenv("CRISIS_NOTIFY_ATTEMPTS", "3")
    monkeypatch.setenv("CRISIS_SMTP_URL", "")  # empty counts as unset
    s = load_settings()
    assert s.db_url.endswith("x.db") and s.playbooks_dir == tmp_path / "pb" and s.roster_path == tmp_path / "r.yaml"
    assert s.notify_file == tmp_path / "n.jsonl" and s.log_path == tmp_path / "c.log"
    assert (s.tz, s.signals_secret, s.user) == ("Europe/Paris", "s3", "wang")
    assert (s.notify.public_url, s.notify.attempts, s.notify.smtp_url) == ("https://crisis.example", 3, None)


def test_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CRISIS_PLAYBOOKS", "/nowhere")
    s = load_settings().with_overrides(playbooks_dir=tmp_path, db_url=None)
    assert s.playbooks_dir == tmp_path
    assert load_settings(playbooks_dir=tmp_path).playbooks_dir == tmp_path


@pytest.mark.parametrize(("var", "value"), [("CRISIS_TZ", "Mars/Olympus"), ("CRISIS_NOTIFY_ATTEMPTS", "many"),
                                            ("CRISIS_NOTIFY_TIMEOUT", "-1")])
def test_bad_value_is_an_input_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, var: str,
                                                         value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(InputError) as caught:
        load_settings()
    assert caught.value.field == var and str(caught.value).startswith(f"{var}: ") and str(caught.value).count(var) == 1


def test_every_notification_setting_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """NotifySettings declares the fields once; the environment reader is made from them, so none is missed."""
    from dataclasses import fields

    from crisis.notify.setup import NotifySettings
    from crisis.settings import NotifyEnv

    expected: dict[str, object] = {}
    for f in fields(NotifySettings):
        alias = NotifyEnv.model_fields[f.name].validation_alias
        var = alias if isinstance(alias, str) else f"CRISIS_{f.name.upper()}"
        value = 7 if isinstance(f.default, int | float) else f"value of {var}"
        monkeypatch.setenv(var, str(value))
        expected[f.name] = value
    notify = load_settings().notify
    assert {name: getattr(notify, name) for name in expected} == expected
    assert notify.timeout == 7 and notify.smtp_url == "value of CRISIS_SMTP_URL"  # the names operators set


def test_bad_time_zone_at_the_shell_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from crisis.cli import app

    monkeypatch.setenv("CRISIS_TZ", "Mars/Olympus")
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 2 and "CRISIS_TZ" in result.output and "Traceback" not in result.output


def test_default_paths_from_a_checkout_are_its_store_wherever_the_command_runs(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("CRISIS_HOME", "CRISIS_DB_URL", "CRISIS_LOG", "CRISIS_NOTIFY_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert (SOURCE / "pyproject.toml").is_file() and s.home == SOURCE  # this test runs from the repository
    assert s.db_url == f"sqlite:///{SOURCE / 'store' / 'crisis.db'}"
    assert (s.log_path, s.notify_file) == (SOURCE / "store" / "crisis.log", SOURCE / "store" / "notifications.jsonl")

    monkeypatch.setenv("CRISIS_HOME", str(tmp_path / "deploy"))  # a service's folder, whatever its cwd
    monkeypatch.setenv("CRISIS_LOG", "/var/log/crisis.log")  # a variable of its own still wins
    s = load_settings()
    assert s.db_url == f"sqlite:///{tmp_path / 'deploy' / 'store' / 'crisis.db'}"
    assert s.notify_file == tmp_path / "deploy" / "store" / "notifications.jsonl"
    assert s.log_path == Path("/var/log/crisis.log")


def test_the_web_drills_page_reads_where_drill_run_writes(svc, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    from web_support import make_app

    monkeypatch.setenv("CRISIS_HOME", str(tmp_path))
    assert make_app(svc).state.drills_dir == tmp_path / "reports" / "drills"


def test_one_drills_folder_setting_for_the_drill_cli_and_the_web(svc, monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """CRISIS_DRILLS_DIR moves both: `crisis drill run` writes there and the drills page reads there."""
    from helpers import DRILLS_DIR, Cli
    from web_support import make_app

    monkeypatch.setenv("CRISIS_HOME", str(tmp_path))
    monkeypatch.setenv("CRISIS_DRILLS_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().drills_dir == tmp_path / "elsewhere"
    assert make_app(svc).state.drills_dir == tmp_path / "elsewhere"
    card = Cli(tmp_path).json("drill", "run", str(DRILLS_DIR / "medical-dispute-viral.yaml"))
    assert card["run"]["reports_dir"] == str(tmp_path / "elsewhere" / card["run"]["id"])
    assert (tmp_path / "elsewhere" / card["run"]["id"] / "scorecard.json").is_file()
    assert not (tmp_path / "reports").exists()
