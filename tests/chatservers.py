"""A local HTTP server playing WeCom, DingTalk, Feishu and a generic webhook, checking what each platform's
documentation requires (credential, signature, timestamp window, payload shape) and refusing the way they do:
HTTP 200 with a non-zero errcode/code. Also a path that hangs and one that answers 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

WECOM_KEY = "wk-123"
DING_TOKEN, DING_SECRET = "dt-456", "SECdingsecret"
FEISHU_HOOK, FEISHU_SECRET = "fh-789", "feishusecret"
HOOK_SECRET = "hooksecret"


@dataclass
class Received:
    platform: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    while_hanging: int = 0  # requests hanging on /hang when this one arrived


@dataclass
class Platforms:
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    hanging: int = 0
    hang_at: list[float] = field(default_factory=list)  # when each request to /hang arrived (monotonic)
    url: str = ""

    def of(self, platform: str) -> list[Received]:
        return [r for r in self.received if r.platform == platform]


def _ding_ok(q: dict[str, str]) -> bool:
    ts = q.get("timestamp", "")
    if not ts.isdigit() or abs(int(ts) - time.time() * 1000) > 3600_000:
        return False
    want = base64.b64encode(hmac.new(DING_SECRET.encode(), f"{ts}\n{DING_SECRET}".encode(), hashlib.sha256)
                            .digest()).decode()
    return hmac.compare_digest(q.get("sign", ""), want)


def _feishu_ok(body: dict[str, Any]) -> bool:
    ts = str(body.get("timestamp", ""))
    if not ts.isdigit() or abs(int(ts) - time.time()) > 3600:
        return False
    want = base64.b64encode(hmac.new(f"{ts}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
    return hmac.compare_digest(str(body.get("sign", "")), want)


def _shape(platform: str, body: dict[str, Any]) -> bool:
    if platform == "wecom":
        kind = body.get("msgtype")
        if kind == "text":
            return len(body["text"]["content"].encode()) <= 2048
        return kind == "markdown" and len(body["markdown"]["content"].encode()) <= 4096
    if platform == "dingtalk":
        return body.get("msgtype") == "markdown" and {"title", "text"} <= set(body["markdown"])
    if platform == "feishu":
        return body.get("msg_type") == "text" and isinstance(body.get("content", {}).get("text"), str)
    return True


def serve(state: Platforms) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_a: object) -> None:
            pass

        def _answer(self, status: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if parts.path == "/hang":
                state.hang_at.append(time.monotonic())
                state.hanging += 1
                state.release.wait(30)
                state.hanging -= 1
                return
            if parts.path == "/fail":
                self._answer(500, {"error": "boom"})
                return
            body = json.loads(raw)
            platform = parts.path.strip("/").split("/")[0]
            ok, code_field, bad = True, "errcode", 0
            if platform == "wecom":
                ok, bad = q.get("key") == WECOM_KEY, 93000
            elif platform == "dingtalk":
                ok, bad = q.get("access_token") == DING_TOKEN and _ding_ok(q), 310000
            elif platform == "feishu":
                ok, code_field, bad = parts.path == f"/feishu/{FEISHU_HOOK}" and _feishu_ok(body), "code", 19021
            elif platform == "webhook":
                ts = self.headers.get("X-Crisis-Timestamp", "")
                want = "sha256=" + hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get("X-Crisis-Signature", ""), want):
                    self._answer(401, {"error": "bad signature"})
                    state.refused.append((platform, "signature"))
                    return
            if ok and not _shape(platform, body):
                ok, bad = False, 40008 if platform != "feishu" else 9499
            if not ok:
                state.refused.append((platform, "refused"))
                self._answer(200, {code_field: bad, "errmsg" if code_field == "errcode" else "msg": "refused"})
                return
            state.received.append(Received(platform, body, dict(self.headers), time.monotonic(), state.hanging))
            self._answer(200, {code_field: 0, "errmsg" if code_field == "errcode" else "msg": "ok"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def running() -> Iterator[Platforms]:
    """The stand-in platforms serving on 127.0.0.1 for the block; a held (hanging) request is released at the
    end so shutdown does not wait for it."""
    state = Platforms()
    server = serve(state)
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
