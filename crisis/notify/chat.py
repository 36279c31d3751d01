"""Chat robots and the generic webhook: WeCom, DingTalk, Feishu/Lark, JSON + HMAC-SHA256.

Written here rather than through Apprise (read in apprise 2.3.0's plugins): its WeCom bot and DingTalk
plugins check only the HTTP status, but these platforms refuse a message with HTTP 200 and a non-zero
`errcode` (a refused page would count as delivered); its Feishu and Lark plugins cannot sign at all; its
WeCom bot sends text only, with no mentions; its JSON plugin has no HMAC signature. Each adapter is one
signed POST and a check of the answer's body, per the platform's own documentation (see
shared/design-notes.md), with a socket timeout on every request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from crisis.clock import SystemClock
from crisis.notify.channels import Delivery, DeliveryError

WECOM_TEXT_MAX, WECOM_MD_MAX = 2048, 4096  # bytes, per WeCom's group-robot page
DINGTALK_WINDOW = 3600  # DingTalk refuses a timestamp more than an hour off


def _now() -> float:
    """Signatures carry the real time (the platforms refuse stale ones), whatever clock the engine runs on."""
    return SystemClock().now().timestamp()


def post_json(url: str, body: dict[str, Any] | bytes, *, timeout: float,
              headers: dict[str, str] | None = None) -> Any:
    """POST JSON, return the decoded answer; a non-2xx status or no answer in time is a DeliveryError."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read(65536)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}: {exc.read(300).decode('utf-8', 'replace')}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {"raw": raw[:300].decode("utf-8", "replace")}


def _clip(text: str, limit: int) -> str:
    """Cut to at most `limit` UTF-8 bytes without splitting a character."""
    data = text.encode("utf-8")
    return text if len(data) <= limit else data[: limit - 3].decode("utf-8", "ignore") + "..."


def _contact(d: Delivery, *keys: str) -> str | None:
    contacts = d.person.contacts if d.person else {}
    return next((contacts[k] for k in keys if contacts.get(k)), None)


def _check_code(answer: Any, *fields: str) -> str:
    """Robots answer HTTP 200 even when they refuse: a non-zero errcode/code is a failure."""
    if not isinstance(answer, dict):
        raise DeliveryError(f"unexpected answer {answer!r:.200}")
    for f in fields:
        if f in answer and answer[f] not in (0, "0"):
            msg = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
            raise DeliveryError(f"refused: {f}={answer[f]} {msg}".strip())
    return json.dumps(answer, ensure_ascii=False)[:300]


class WeComRobot:
    """WeCom (企业微信) group robot: the `key` in the URL is the only credential. Mentions: `<@userid>` in a
    Markdown message, or `mentioned_mobile_list` in a text message (the only kind that takes phones)."""

    name = "wecom"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url, self.timeout = url, timeout

    def payload(self, d: Delivery) -> dict[str, Any]:
        userid, phone = _contact(d, "wecom_userid"), _contact(d, "phone", "mobile")
        if userid or not phone:
            mention = f"\n<@{userid}>" if userid else ""
            return {"msgtype": "markdown",
                    "markdown": {"content": _clip(d.markdown, WECOM_MD_MAX - len(mention.encode())) + mention}}
        return {"msgtype": "text", "text": {"content": _clip(d.text, WECOM_TEXT_MAX), "mentioned_mobile_list": [phone]}}

    def deliver(self, message: Delivery) -> str:
        return _check_code(post_json(self.url, self.payload(message), timeout=self.timeout), "errcode")


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk: base64(HmacSHA256(key=secret, msg="{timestamp}\\n{secret}")), URL-encoded by the caller."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class DingTalkRobot:
    """DingTalk (钉钉) custom robot, signed (`timestamp` in ms and `sign` in the query string). Mentions by
    phone (`atMobiles`, and "@phone" in the text) or user id (`atUserIds`)."""

    name = "dingtalk"

    def __init__(self, url: str, secret: str | None = None, *, timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout

    def signed_url(self, now_ms: int | None = None) -> str:
        if not self.secret:
            return self.url
        ts = now_ms if now_ms is not None else int(_now() * 1000)
        query = urllib.parse.urlencode({"timestamp": ts, "sign": dingtalk_sign(self.secret, ts)})
        return f"{self.url}{'&' if '?' in self.url else '?'}{query}"

    def payload(self, d: Delivery) -> dict[str, Any]:
        phone, userid = _contact(d, "phone", "mobile"), _contact(d, "dingtalk_userid")
        mention = " ".join(f"@{x}" for x in (phone, userid) if x)
        return {"msgtype": "markdown",
                "markdown": {"title": d.subject[:60], "text": d.markdown + (f"\n\n{mention}" if mention else "")},
                "at": {"atMobiles": [phone] if phone else [], "atUserIds": [userid] if userid else [],
                       "isAtAll": False}}

    def deliver(self, message: Delivery) -> str:
        return _check_code(post_json(self.signed_url(), self.payload(message), timeout=self.timeout), "errcode")


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark: base64(HmacSHA256(key="{timestamp}\\n{secret}", msg=b"")) — the string is the *key*."""
    return base64.b64encode(hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


class FeishuBot:
    """Feishu/Lark (飞书) custom bot: `timestamp` (seconds) and `sign` go in the JSON body. Mentions by
    open id with `<at user_id="ou_…">name</at>` in a text message."""

    name = "feishu"

    def __init__(self, url: str, secret: str | None = None, *, timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout

    def payload(self, d: Delivery, now_s: int | None = None) -> dict[str, Any]:
        open_id = _contact(d, "feishu_open_id", "feishu_userid")
        name = d.person.name if d.person else d.recipient
        text = d.text + (f'\n<at user_id="{open_id}">{name}</at>' if open_id else "")
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
        if self.secret:
            ts = now_s if now_s is not None else int(_now())
            body = {"timestamp": str(ts), "sign": feishu_sign(self.secret, ts), **body}
        return body

    def deliver(self, message: Delivery) -> str:
        return _check_code(post_json(self.url, self.payload(message), timeout=self.timeout), "code", "StatusCode")


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Generic webhook: hex HMAC-SHA256 over "{timestamp}." + body (receivers check it and the age)."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class JsonWebhook:
    """Any HTTP endpoint: the message as JSON, signed in `X-Crisis-Signature` with `X-Crisis-Timestamp`, and
    the dedupe key in `Idempotency-Key` so the receiver can drop a redelivery. Any 2xx is success."""

    name = "webhook"

    def __init__(self, url: str, secret: str | None = None, *, timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout

    def body(self, d: Delivery) -> dict[str, Any]:
        return {"key": d.dedupe_key, "kind": d.kind, "recipient": d.recipient,
                "contacts": d.person.contacts if d.person else {}, "incident": d.incident_id,
                "subject": d.subject, "text": d.text, "markdown": d.markdown,
                "facts": {k: v for k, v in d.facts.items() if not k.startswith("_")},
                "created_at": d.created_at.isoformat()}

    def deliver(self, message: Delivery) -> str:
        raw = json.dumps(self.body(message), ensure_ascii=False).encode("utf-8")
        ts = str(int(_now()))
        headers = {"Idempotency-Key": message.dedupe_key, "X-Crisis-Timestamp": ts}
        if self.secret:
            headers["X-Crisis-Signature"] = webhook_signature(self.secret, ts, raw)
        answer = post_json(self.url, raw, timeout=self.timeout, headers=headers)
        return json.dumps(answer, ensure_ascii=False)[:300] if answer else "accepted"
