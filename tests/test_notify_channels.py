"""Each channel against a real local counterpart: chat robots whose signatures and payloads are checked the
way each platform documents them (refusals are HTTP 200 + errcode and must count as failures), a generic
webhook with HMAC, and a real SMTP server with STARTTLS and login."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import time
from datetime import UTC, datetime
from email import message_from_bytes

import chatservers as cs
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from crisis.notify.channels import Delivery, DeliveryError, FileChannel
from crisis.notify.chat import DingTalkRobot, FeishuBot, JsonWebhook, WeComRobot
from crisis.notify.email import SmtpChannel
from crisis.roster import Person

NOW = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
ALICE = Person(id="alice", name="李<b>*", language="en",
               contacts={"email": "alice@example.org", "phone": "13800000000", "wecom_userid": "alice.w",
                         "dingtalk_userid": "ding-alice", "feishu_open_id": "ou_alice"})


def delivery(person: Person | None = ALICE, key: str = "esc:1:1:x") -> Delivery:
    return Delivery(dedupe_key=key, channel="x", kind="escalation", recipient=person.id if person else "bob",
                    person=person, subject="[Incident #1] overdue 5m", text="Overdue by 5m: Verify",
                    markdown="**Overdue**",
                    incident_id=1, created_at=NOW, facts={"task": 3})


@pytest.fixture(scope="module")
def _server():
    with cs.running() as state:
        yield state


@pytest.fixture()
def platforms(_server):
    _server.received.clear()
    _server.refused.clear()
    return _server


def test_wecom_markdown_mentions_userid_and_text_mentions_phone(platforms):
    robot = WeComRobot(f"{platforms.url}/wecom?key={cs.WECOM_KEY}", timeout=2)
    assert "errcode" in robot.deliver(delivery())
    by_phone = ALICE.model_copy(update={"contacts": {"phone": "13800000000"}})
    robot.deliver(delivery(by_phone))
    md, text = (r.body for r in platforms.of("wecom"))
    assert md["msgtype"] == "markdown" and md["markdown"]["content"].endswith("<@alice.w>")
    assert text["msgtype"] == "text" and text["text"]["mentioned_mobile_list"] == ["13800000000"]


def test_wecom_clips_to_the_documented_byte_limit(platforms):
    robot = WeComRobot(f"{platforms.url}/wecom?key={cs.WECOM_KEY}", timeout=2)
    long = Delivery(**{**delivery().__dict__, "markdown": "警" * 3000})
    robot.deliver(long)  # the server refuses anything over 4096 bytes
    assert len(platforms.of("wecom")[0].body["markdown"]["content"].encode()) <= 4096


def test_dingtalk_signs_in_milliseconds_and_mentions(platforms):
    robot = DingTalkRobot(f"{platforms.url}/dingtalk?access_token={cs.DING_TOKEN}", cs.DING_SECRET, timeout=2)
    robot.deliver(delivery())
    body = platforms.of("dingtalk")[0].body
    assert body["at"] == {"atMobiles": ["13800000000"], "atUserIds": ["ding-alice"], "isAtAll": False}
    assert "@13800000000" in body["markdown"]["text"]


def test_feishu_signs_the_feishu_way_and_mentions_by_open_id(platforms):
    bot = FeishuBot(f"{platforms.url}/feishu/{cs.FEISHU_HOOK}", cs.FEISHU_SECRET, timeout=2)
    bot.deliver(delivery())
    text = platforms.of("feishu")[0].body["content"]["text"]
    assert '<at user_id="ou_alice">' in text


@pytest.mark.parametrize("make", [
    lambda u: WeComRobot(f"{u}/wecom?key=wrong", timeout=2),
    lambda u: DingTalkRobot(f"{u}/dingtalk?access_token={cs.DING_TOKEN}", "wrong-secret", timeout=2),
    lambda u: FeishuBot(f"{u}/feishu/{cs.FEISHU_HOOK}", "wrong-secret", timeout=2),
    # signing Feishu the DingTalk way is refused too
    lambda u: _DingStyleFeishu(f"{u}/feishu/{cs.FEISHU_HOOK}", cs.FEISHU_SECRET, timeout=2),
], ids=["wecom-key", "dingtalk-sign", "feishu-sign", "feishu-signed-like-dingtalk"])
def test_a_refusal_with_http_200_is_a_failure(platforms, make):
    with pytest.raises(DeliveryError, match="refused"):
        make(platforms.url).deliver(delivery())
    assert platforms.received == [] and len(platforms.refused) == 1


class _DingStyleFeishu(FeishuBot):
    def payload(self, d, now_s=None):
        import base64
        import hashlib
        import hmac
        import time

        ts = int(time.time())
        sign = base64.b64encode(hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256)
                                .digest()).decode()
        return {"timestamp": str(ts), "sign": sign, "msg_type": "text", "content": {"text": d.text}}


def test_webhook_is_signed_and_carries_the_idempotency_key(platforms):
    JsonWebhook(f"{platforms.url}/webhook", cs.HOOK_SECRET, timeout=2).deliver(delivery())
    got = platforms.of("webhook")[0]
    assert got.headers["Idempotency-Key"] == "esc:1:1:x" and got.body["facts"] == {"task": 3}
    with pytest.raises(DeliveryError, match="HTTP 401"):
        JsonWebhook(f"{platforms.url}/webhook", "wrong", timeout=2).deliver(delivery())


def test_hung_endpoint_times_out(platforms):
    with pytest.raises(DeliveryError, match=r"timed out|TimeoutError"):
        JsonWebhook(f"{platforms.url}/hang", timeout=0.3).deliver(delivery())


# ----------------------------------------------------------------------------------------------------- SMTP
class _Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes, bool]] = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.mail_from, envelope.rcpt_tos, envelope.content, session.ssl is not None))
        return "250 OK queued"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def smtp_server(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    inbox = _Inbox()

    def auth(server, session, envelope, mechanism, data):
        ok = (data.login, data.password) == (b"crisis", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
                     authenticator=auth, auth_require_tls=True, ready_timeout=5)
    ctl.start()
    yield inbox, port, tmp_path / "ca.pem"
    ctl.stop()


def test_smtp_starttls_login_and_stable_message_id(smtp_server):
    inbox, port, ca = smtp_server
    ch = SmtpChannel(f"smtp://crisis:s3cret@127.0.0.1:{port}?from=crisis@hospital.example&cafile={ca}", timeout=5)
    said = ch.deliver(delivery())
    ch.deliver(delivery())  # a redelivery carries the same Message-ID, so mail clients thread it as one
    assert "accepted" in said and "250" in said
    (frm, to, raw, tls), (_, _, raw2, _) = inbox.mails
    assert frm == "crisis@hospital.example" and to == ["alice@example.org"] and tls
    mail = message_from_bytes(raw)
    assert mail["Message-ID"] == message_from_bytes(raw2)["Message-ID"]
    assert "Overdue by 5m" in mail.get_payload(decode=True).decode()


def test_smtp_bad_password_and_untrusted_certificate_fail(smtp_server, tmp_path):
    _, port, ca = smtp_server
    with pytest.raises(DeliveryError, match="Authentication"):
        SmtpChannel(f"smtp://crisis:nope@127.0.0.1:{port}?cafile={ca}", timeout=5).deliver(delivery())
    with pytest.raises(DeliveryError, match=r"CERTIFICATE|certificate"):
        SmtpChannel(f"smtp://crisis:s3cret@127.0.0.1:{port}", timeout=5).deliver(delivery())


def test_smtp_person_without_address_fails_clearly(smtp_server):
    _, port, ca = smtp_server
    nobody = ALICE.model_copy(update={"contacts": {}})
    with pytest.raises(DeliveryError, match="no email address"):
        SmtpChannel(f"smtp://crisis:s3cret@127.0.0.1:{port}?cafile={ca}", timeout=5).deliver(delivery(nobody))


# ----------------------------------------------------------------------------------------------------- file
def test_file_channel_index_means_no_history_reread_and_no_duplicate(tmp_path):
    path = tmp_path / "n.jsonl"
    ch = FileChannel(path)
    for i in range(3):
        ch.deliver(delivery(key=f"k{i}"))
    # a crash after the append but before the index update: the line is there, the index does not know it
    line = path.read_bytes().splitlines(keepends=True)[0].replace(b'"k0"', b'"k9"')
    with path.open("ab") as fh:
        fh.write(line + b'{"key": "torn')  # ... and a torn half line after it
    again = FileChannel(path)  # a restart
    assert again.deliver(delivery(key="k1")) == "already written"
    assert again.deliver(delivery(key="k9")) == "already written"  # caught up from the stored offset
    again.deliver(delivery(key="k3"))
    keys = [__import__("json").loads(x)["key"] for x in path.read_text("utf-8").splitlines()]
    assert keys == ["k0", "k1", "k2", "k9", "k3"]
    offset = again._index.execute("SELECT offset FROM state").fetchone()[0]
    assert offset == path.stat().st_size


def test_file_channel_writes_a_batch_with_one_fsync_and_answers_each_message(tmp_path, monkeypatch):
    path = tmp_path / "n.jsonl"
    ch = FileChannel(path)
    ch.deliver(delivery(key="k0"))
    syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd)))
    circular: dict = {}
    circular["self"] = circular
    bad = dataclasses.replace(delivery(key="bad"), facts=circular)  # cannot be written as JSON
    batch = [delivery(key="k1"), bad, delivery(key="k0"), delivery(key="k2"), delivery(key="k1")]
    answers = ch.deliver_batch(batch)
    assert isinstance(answers[1], DeliveryError)  # fails alone ...
    assert answers[0] == answers[3] == "written to n.jsonl" and answers[2] == "already written"
    assert [json.loads(x)["key"] for x in path.read_text("utf-8").splitlines()] == ["k0", "k1", "k2"]  # ... the rest
    assert len(syncs) == 1  # one write and one fsync for the whole batch
    assert ch.deliver_batch([delivery(key="k2")]) == ["already written"] and len(syncs) == 1  # nothing new: no write


def test_file_channel_batch_after_a_torn_last_line(tmp_path):
    path = tmp_path / "n.jsonl"
    FileChannel(path).deliver_batch([delivery(key="k0"), delivery(key="k1")])
    whole = path.read_bytes()
    with path.open("ab") as fh:  # killed in the middle of writing a batch: one whole new line, then half of one
        fh.write(whole.splitlines(keepends=True)[0].replace(b'"k0"', b'"k2"') + b'{"key": "k3", "ki')
    again = FileChannel(path)
    assert again.deliver_batch([delivery(key="k2"), delivery(key="k3"), delivery(key="k4")]) == [
        "already written", "written to n.jsonl", "written to n.jsonl"]
    assert [json.loads(x)["key"] for x in path.read_text("utf-8").splitlines()] == ["k0", "k1", "k2", "k3", "k4"]
    assert again._index.execute("SELECT offset FROM state").fetchone()[0] == path.stat().st_size


def test_file_channel_forgets_old_keys_so_its_index_does_not_grow_with_history(tmp_path):
    path = tmp_path / "n.jsonl"
    ch = FileChannel(path)
    ch.deliver_batch([delivery(key=f"old{i}") for i in range(50)])
    week_ago = int(time.time() - FileChannel.RETAIN - 60)
    ch._index.execute("UPDATE seen SET at = ?", (week_ago,))
    ch._pruned = 0.0  # the next batch prunes
    ch.deliver_batch([delivery(key="new")])
    assert [k for (k,) in ch._index.execute("SELECT key FROM seen")] == ["new"]
    assert ch.deliver(delivery(key="new")) == "already written"  # what is recent is still remembered


def test_file_channel_upgrades_an_index_written_before_keys_expired(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text("", encoding="utf-8")
    old = sqlite3.connect(str(path) + ".idx")
    old.execute("CREATE TABLE seen (key TEXT PRIMARY KEY)")
    old.execute("INSERT INTO seen VALUES ('k0')")
    old.commit()
    old.close()
    ch = FileChannel(path)
    assert ch.deliver(delivery(key="k0")) == "already written"  # kept, counted as written at the upgrade
    assert ch._index.execute("SELECT at FROM seen").fetchone()[0] >= time.time() - 60
