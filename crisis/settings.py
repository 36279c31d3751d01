"""The deployment's settings: the one place that reads the environment (pydantic-settings).

CRISIS_HOME (the folder whose store/ holds the default database, log and notification file, and whose
reports/ gets drill reports: the source checkout when running from one, else the current directory),
CRISIS_DB_URL, CRISIS_PLAYBOOKS, CRISIS_ROSTER (default: the copies shipped in the package, see
crisis.resources), CRISIS_NOTIFY_FILE, CRISIS_LOG, CRISIS_DRILLS_DIR (drill run reports; default
CRISIS_HOME/reports/drills), CRISIS_TZ (the hospital's
time zone: display, quiet hours, rota hand-overs), CRISIS_SIGNALS_SECRET (HMAC secret of inbound signals),
CRISIS_USER (who acts at the shell by default); notification channels: CRISIS_SMTP_URL, CRISIS_WECOM_URL,
CRISIS_DINGTALK_URL/_SECRET, CRISIS_FEISHU_URL/_SECRET, CRISIS_WEBHOOK_URL/_SECRET, CRISIS_PUBLIC_URL,
CRISIS_ACK_SECRET, CRISIS_NOTIFY_TIMEOUT/_ATTEMPTS/_BACKOFF/_LEASE (see crisis.notify.setup).

pydantic-settings beats the hand-written `os.environ.get` + `float(...)` it replaces: every variable is typed
and validated in one declaration, and a bad value is reported with the variable's name (an InputError, exit 2).
An empty variable counts as unset.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crisis.errors import InputError
from crisis.notify.setup import NotifySettings
from crisis.resources import data_path

SOURCE = Path(__file__).resolve().parents[1]  # the checkout, or site-packages for an installed wheel
_T = TypeVar("_T", bound=BaseSettings)
_COMMON = SettingsConfigDict(env_prefix="CRISIS_", env_ignore_empty=True, extra="ignore", populate_by_name=True)


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


class _Env(BaseSettings):
    model_config = _COMMON


# The notification part of the environment, made from NotifySettings' own fields (types, defaults, Field
# constraints and aliases), so the variables are declared once, in crisis.notify.setup.
_HINTS = get_type_hints(NotifySettings, include_extras=True)
NotifyEnv = create_model("NotifyEnv", __base__=_Env,
                         **{f.name: (_HINTS[f.name], f.default) for f in fields(NotifySettings)})


def _notify_from_env() -> NotifySettings:
    return NotifySettings(**_checked(NotifyEnv).model_dump())


class Settings(BaseSettings):
    """Where things are and how this deployment talks; keyword arguments override the environment."""

    model_config = SettingsConfigDict(**_COMMON, frozen=True)
    home: Path = Field(default_factory=default_home)
    db_url: str = Field(default_factory=lambda v: f"sqlite:///{v['home'] / 'store' / 'crisis.db'}")
    playbooks_dir: Path = Field(data_path("playbooks"), validation_alias="CRISIS_PLAYBOOKS")
    roster_path: Path = Field(data_path("examples", "roster.yaml"), validation_alias="CRISIS_ROSTER")
    notify_file: Path = Field(default_factory=lambda v: v["home"] / "store" / "notifications.jsonl")
    log_path: Path = Field(default_factory=lambda v: v["home"] / "store" / "crisis.log", validation_alias="CRISIS_LOG")
    # where `crisis drill run` writes each run's reports and the web's drills page reads them
    drills_dir: Path = Field(default_factory=lambda v: v["home"] / "reports" / "drills")
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


def _env_name(cls: type[BaseSettings], loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    info = cls.model_fields.get(name)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return name if name.startswith("CRISIS_") else f"CRISIS_{name.upper()}"


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
