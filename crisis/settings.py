"""The deployment's settings: the one place that reads the environment (pydantic models).

CRISIS_HOME (the folder whose store/ holds the default database, log and notification file, and whose
reports/ gets drill reports: the source checkout when running from one, else the current directory),
CRISIS_DB_URL, CRISIS_PLAYBOOKS, CRISIS_ROSTER (default: the copies shipped in the package, see
crisis.resources), CRISIS_NOTIFY_FILE, CRISIS_LOG, CRISIS_DRILLS_DIR (drill run reports; default
CRISIS_HOME/reports/drills), CRISIS_CACHE_DIR (parsed playbooks and roster, see crisis.yamlsrc; default
CRISIS_HOME/store/cache), CRISIS_TZ (the hospital's time zone: display, quiet hours, rota hand-overs),
CRISIS_SIGNALS_SECRET (HMAC secret of inbound signals),
CRISIS_USER (who acts at the shell by default); notification channels: CRISIS_SMTP_URL, CRISIS_WECOM_URL,
CRISIS_DINGTALK_URL/_SECRET, CRISIS_FEISHU_URL/_SECRET, CRISIS_WEBHOOK_URL/_SECRET, CRISIS_PUBLIC_URL,
CRISIS_ACK_SECRET, CRISIS_NOTIFY_TIMEOUT/_ATTEMPTS/_BACKOFF/_LEASE (see crisis.notify.setup).

Every variable is typed and validated by pydantic in one declaration (a field: its type, default and
constraints), and a bad value is reported with the variable's name (an InputError, exit 2). An empty variable
counts as unset. `_Env` reads the variables itself (what pydantic-settings did here, in a dozen lines): importing
pydantic-settings cost ~30 ms of every command's start-up (its sources for dotenv, cloud vaults, argparse and
asyncio), a tenth of `crisis open`, for the one thing used from it.
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from crisis.errors import InputError
from crisis.notify.setup import NotifySettings
from crisis.resources import data_path

SOURCE = Path(__file__).resolve().parents[1]  # the checkout, or site-packages for an installed wheel
PREFIX = "CRISIS_"
_T = TypeVar("_T", bound="_Env")


def default_home() -> Path:
    """Where a deployment's files go unless told: the source checkout when the package runs from one (an
    editable install, `python3 dev.py`: store/ in the repository, whatever the current directory), else the
    current directory, as for any tool run from its deployment folder. Never the package's own folder: for
    a wheel that is site-packages."""
    return SOURCE if (SOURCE / "pyproject.toml").is_file() and (SOURCE / "crisis").is_dir() else Path.cwd()


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)",
                         field="CRISIS_TZ") from None


def env_name(name: str, alias: object) -> str:
    """The variable a field is read from: its alias when it has one (CRISIS_PLAYBOOKS), else CRISIS_<NAME>."""
    return alias if isinstance(alias, str) else f"{PREFIX}{name.upper()}"


class _Env(BaseModel):
    """A model whose fields come from the environment; values given to the constructor win over it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, given: Any) -> Any:
        """The fields' variables that are set and not empty (names are not case-sensitive), under the key
        pydantic validates them by (so an error's location names the variable), then what was given."""
        if not isinstance(given, dict):
            return given
        env = {k.upper(): v for k, v in os.environ.items() if v and k[:len(PREFIX)].upper() == PREFIX}
        found: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            var = env_name(name, info.validation_alias)
            if var in env and name not in given and var not in given:
                found[var if isinstance(info.validation_alias, str) else name] = env[var]
        return {**found, **given}


# The notification part of the environment, made from NotifySettings' own fields (types, defaults, Field
# constraints and aliases), so the variables are declared once, in crisis.notify.setup.
_HINTS = get_type_hints(NotifySettings, include_extras=True)
NotifyEnv = create_model("NotifyEnv", __base__=_Env,
                         **{f.name: (_HINTS[f.name], f.default) for f in fields(NotifySettings)})


def _notify_from_env() -> NotifySettings:
    return NotifySettings(**_checked(NotifyEnv).model_dump())


class Settings(_Env):
    """Where things are and how this deployment talks; keyword arguments override the environment."""

    model_config = ConfigDict(frozen=True)
    home: Path = Field(default_factory=default_home)
    db_url: str = Field(default_factory=lambda v: f"sqlite:///{v['home'] / 'store' / 'crisis.db'}")
    playbooks_dir: Path = Field(data_path("playbooks"), validation_alias="CRISIS_PLAYBOOKS")
    roster_path: Path = Field(data_path("examples", "roster.yaml"), validation_alias="CRISIS_ROSTER")
    notify_file: Path = Field(default_factory=lambda v: v["home"] / "store" / "notifications.jsonl")
    log_path: Path = Field(default_factory=lambda v: v["home"] / "store" / "crisis.log", validation_alias="CRISIS_LOG")
    # where `crisis drill run` writes each run's reports and the web's drills page reads them
    drills_dir: Path = Field(default_factory=lambda v: v["home"] / "reports" / "drills")
    # what the playbooks and the roster parsed into, for the next process (crisis.yamlsrc: a cache, never a source)
    cache_dir: Path = Field(default_factory=lambda v: v["home"] / "store" / "cache")
    tz: str = "Asia/Shanghai"
    signals_secret: str | None = None
    user: str | None = None
    notify: NotifySettings = Field(default_factory=_notify_from_env)

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given values (None: keep), e.g. the CLI's --db, --roster, --playbooks."""
        return self.model_copy(update={k: v for k, v in changes.items() if v is not None})


def _env_name(cls: type[_Env], loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    info = cls.model_fields.get(name)
    return name if name.startswith(PREFIX) else env_name(name, info.validation_alias if info else None)


def _checked(cls: type[_T], **overrides: Any) -> _T:
    try:
        return cls(**overrides)
    except InputError:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        var = _env_name(cls, tuple(first.get("loc", ())))
        if var == "CRISIS_TZ":
            zone(str(first.get("input")))
        raise InputError(str(first.get("msg")), field=var) from None  # shown as "VAR: message"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and the given overrides); a bad value is an InputError naming it."""
    return _checked(Settings, **overrides)
