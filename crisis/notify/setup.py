"""Build the channels, the renderer and the dispatcher from the deployment's settings.

Environment (read once, by crisis.settings):
CRISIS_SMTP_URL, CRISIS_WECOM_URL, CRISIS_DINGTALK_URL + CRISIS_DINGTALK_SECRET,
CRISIS_FEISHU_URL + CRISIS_FEISHU_SECRET, CRISIS_WEBHOOK_URL + CRISIS_WEBHOOK_SECRET (chat robots are the
deployment's group chats; the roster says who prefers which and how to @-mention them);
CRISIS_PUBLIC_URL (links in messages) + CRISIS_ACK_SECRET (signs one-tap acknowledgement links);
CRISIS_NOTIFY_TIMEOUT (seconds per delivery), CRISIS_NOTIFY_ATTEMPTS, CRISIS_NOTIFY_BACKOFF (first retry,
seconds), CRISIS_NOTIFY_LEASE (seconds a claimed message is left to its claimer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

from pydantic import Field

if TYPE_CHECKING:  # crisis.settings holds a NotifySettings: reading the settings must not load the channels,
    # the dispatcher and the database layer (a read command never delivers; see tests/test_cli_startup.py)
    from sqlalchemy.engine import Engine

    from crisis.clock import Clock
    from crisis.notify.channels import Channel
    from crisis.notify.dispatch import Dispatcher, Policy
    from crisis.notify.messages import Renderer
    from crisis.notify.outbox import Routing
    from crisis.roster import Roster


@dataclass(frozen=True)
class NotifySettings:
    """The notification settings; crisis.settings reads each field from CRISIS_<NAME> (or the alias given),
    validated by the Field constraints here: the one declaration of these variables."""

    smtp_url: str | None = None
    wecom_url: str | None = None
    dingtalk_url: str | None = None
    dingtalk_secret: str | None = None
    feishu_url: str | None = None
    feishu_secret: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    public_url: str | None = None
    ack_secret: str | None = None
    timeout: Annotated[float, Field(gt=0, validation_alias="CRISIS_NOTIFY_TIMEOUT")] = 10.0
    attempts: Annotated[int, Field(ge=1, validation_alias="CRISIS_NOTIFY_ATTEMPTS")] = 6
    backoff: Annotated[float, Field(ge=0, validation_alias="CRISIS_NOTIFY_BACKOFF")] = 30.0
    lease: Annotated[float, Field(gt=0, validation_alias="CRISIS_NOTIFY_LEASE")] = 120.0

    def personal_channels(self) -> dict[str, Channel]:
        """The personal channels this deployment configured; a channel's module (SMTP, chat robots) loads only
        when it is configured, so a write command on a deployment without them never imports smtplib or ssl."""
        t = self.timeout
        out: dict[str, Channel] = {}
        if self.smtp_url:
            from crisis.notify.email import SmtpChannel

            out["email"] = SmtpChannel(self.smtp_url, timeout=t)
        if self.wecom_url or self.dingtalk_url or self.feishu_url or self.webhook_url:
            from crisis.notify.chat import DingTalkRobot, FeishuBot, JsonWebhook, WeComRobot

            if self.wecom_url:
                out["wecom"] = WeComRobot(self.wecom_url, timeout=t)
            if self.dingtalk_url:
                out["dingtalk"] = DingTalkRobot(self.dingtalk_url, self.dingtalk_secret, timeout=t)
            if self.feishu_url:
                out["feishu"] = FeishuBot(self.feishu_url, self.feishu_secret, timeout=t)
            if self.webhook_url:
                out["webhook"] = JsonWebhook(self.webhook_url, self.webhook_secret, timeout=t)
        return out

    def personal(self) -> frozenset[str]:
        names = {"email": self.smtp_url, "wecom": self.wecom_url, "dingtalk": self.dingtalk_url,
                 "feishu": self.feishu_url, "webhook": self.webhook_url}
        return frozenset(k for k, v in names.items() if v)

    def policy(self) -> Policy:
        from crisis.notify.dispatch import Policy

        return Policy(timeout=self.timeout, max_attempts=self.attempts, backoff=self.backoff,
                      lease=max(self.lease, self.timeout * 2 + 1))

    def renderer(self, roster: Roster, tz: ZoneInfo) -> Renderer:
        from crisis.notify.messages import Renderer

        return Renderer(roster, tz, base_url=self.public_url,
                        ack_secret=self.ack_secret.encode() if self.ack_secret else None)


def channels(notify: NotifySettings, notify_file: Path) -> dict[str, Channel]:
    from crisis.notify.channels import FileChannel, LogChannel

    return {"log": LogChannel(), "file": FileChannel(notify_file), **notify.personal_channels()}


def routing(notify: NotifySettings, tz: ZoneInfo) -> Routing:
    from crisis.notify.outbox import DEFAULT_CHANNELS, Routing

    return Routing(channels=DEFAULT_CHANNELS, personal=notify.personal(), tz=tz)


def dispatcher(engine: Engine, chans: Mapping[str, Channel], notify: NotifySettings, roster: Roster, tz: ZoneInfo,
               clock: Clock, on_call: Callable[[datetime], str] | None) -> Dispatcher:
    from crisis.notify.dispatch import Dispatcher

    return Dispatcher(engine, chans, notify.renderer(roster, tz), clock, policy=notify.policy(),
                      routing=routing(notify, tz), on_call=on_call)
