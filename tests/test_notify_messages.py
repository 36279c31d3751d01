"""Notification text: the recipient's language, local time with its zone, who was paged before, escaped
Markdown, and the signed one-tap acknowledgement link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crisis import acklink
from crisis.errors import Forbidden
from crisis.notify.messages import Item, Renderer
from crisis.roster import Roster

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
FACTS = {"incident": 7, "title": "家属*发帖* [链接](http://x) <@all>", "severity": "II", "task": 3,
         "task_zh": "核实事实", "task_en": "Verify facts", "group": "monitoring", "assignee": "info_staff",
         "due_at": "2026-11-26T01:30:00+00:00", "level": 2, "escalation": 11, "overdue_s": 1800,
         "paged_before": ["info_staff"]}


def english(roster: Roster, pid: str) -> Roster:
    data = roster.model_dump(by_alias=True)
    for p in data["people"]:
        if p["id"] == pid:
            p["language"] = "en"
    return Roster.model_validate(data)


def test_escalation_in_chinese_with_local_deadline_and_cli_hint(roster):
    r = Renderer(roster, ZoneInfo("Asia/Shanghai")).render(Item("escalation", "publicity_head", FACTS, NOW))
    assert r.subject.startswith("[舆情#7 II级 升级2] 超时30m: 核实事实")
    assert "截止: 2026-11-26 09:30 Asia/Shanghai (UTC+0800)" in r.text  # 01:30 UTC is 09:30 in the hospital
    assert "此前已通知: 刘工" in r.text
    assert "crisis ack 11 --by publicity_head" in r.text and r.link is None


def test_english_recipient_gets_english(roster):
    r = Renderer(english(roster, "publicity_head"), ZoneInfo("Asia/Shanghai")).render(
        Item("escalation", "publicity_head", FACTS, NOW))
    assert r.subject.startswith("[Incident #7 grade II L2] overdue 30m: Verify facts")
    assert "Paged before: 刘工" in r.text and "Due: 2026-11-26 09:30 Asia/Shanghai" in r.text


def test_markdown_escapes_user_text(roster):
    md = Renderer(roster, ZoneInfo("Asia/Shanghai")).render(Item("escalation", "publicity_head", FACTS, NOW)).markdown
    assert "家属\\*发帖\\* \\[链接\\](http://x) \\<@all>" in md
    assert " <@all>" not in md and "[链接](" not in md  # no live mention, no live link


def test_ack_link_signed_for_the_person_and_verifiable(roster):
    secret = b"k" * 32
    r = Renderer(roster, ZoneInfo("Asia/Shanghai"), base_url="https://crisis.example/", ack_secret=secret).render(
        Item("escalation", "publicity_head", FACTS, NOW))
    assert r.link and r.link.startswith("https://crisis.example/ack/") and r.link in r.text
    token = r.link.rsplit("/", 1)[1]
    claim = acklink.verify(secret, token, NOW + timedelta(hours=23))
    assert (claim.escalation, claim.person) == (11, "publicity_head")
    with pytest.raises(Forbidden, match="expired"):
        acklink.verify(secret, token, NOW + timedelta(hours=24))
    with pytest.raises(Forbidden, match="invalid"):
        acklink.verify(b"other", token, NOW)
    forged = acklink.sign(b"other", 11, "president", NOW).split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(Forbidden, match="invalid"):
        acklink.verify(secret, forged, NOW)
    task_link = Renderer(roster, ZoneInfo("Asia/Shanghai"), base_url="https://crisis.example").render(
        Item("task_assigned", "info_staff", FACTS, NOW)).link
    assert task_link == "https://crisis.example/tasks/3"
