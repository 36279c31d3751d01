"""Web pages, second round: the board pages beyond 200 incidents (bounded page size, filters kept), and no
page shows an engine key (category, stage, status, group, decision …) where a label belongs."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from web_support import escalate_to, login, make_app, open_incident

from crisis import labels
from crisis.principal import Principal
from crisis.store.models import Incident

DO = Principal(person="duty_officer", auth="cli")
LEAD = Principal(person="president", auth="cli")


@pytest.fixture()
def client(svc, tmp_path):
    app = make_app(svc)
    app.state.drills_dir = tmp_path / "no-drills-yet"
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def _bulk_incidents(svc, n: int, *, stage: str = "monitoring", category: str = "medical_dispute") -> None:
    """n bare incident rows (no tasks): enough for paging, far faster than opening each."""
    now = svc.clock.now()
    with Session(svc.engine) as s:
        for k in range(n):
            s.add(Incident(title=f"批量事件 {k}", category=category, severity="III", stage=stage, opened_at=now,
                           opened_by="duty_officer", stage_entered_at=now,
                           signals={}))
        s.commit()


def _ids(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'data-incident="(\d+)"', html)]


def test_board_pages_beyond_200_with_bounded_size(client, svc):
    _bulk_incidents(svc, 205)
    login(client, "duty_officer")
    first = client.get("/").text
    assert len(_ids(first)) == 50 and max(_ids(first)) == 205  # newest first, 50 a page by default
    assert "205" in first and "第 1 / 5 页" in first
    big = client.get("/?size=100000").text  # the size is bounded: at most 200 a page
    assert len(_ids(big)) == 200 and "第 1 / 2 页" in big
    last = client.get("/?size=200&page=2").text
    assert _ids(last) == [5, 4, 3, 2, 1]
    assert _ids(client.get("/?size=200&page=99").text) == [5, 4, 3, 2, 1]  # past the end: the last page
    assert len(_ids(client.get("/?page=abc&size=-3").text)) == 1  # unreadable → default, bounded below
    rows = client.get("/board/rows?size=200&page=2").text  # the live part polls the same page
    assert _ids(rows) == [5, 4, 3, 2, 1]


def test_board_page_links_keep_filters(client, svc):
    _bulk_incidents(svc, 5, category="public_health")
    _bulk_incidents(svc, 3, category="medical_dispute")
    login(client, "duty_officer")
    page = client.get("/?category=public_health&size=2&page=2").text
    assert _ids(page) == [3, 2]
    links = re.findall(r'<nav class="pager".*?</nav>', page, re.S)[0]
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', links)]
    assert hrefs and all("category=public_health" in h and "size=2" in h for h in hrefs)
    assert "?category=public_health&size=2&page=3" in hrefs and "?category=public_health&size=2&page=1" in hrefs
    assert 'aria-current="page">2<' in links
    assert _ids(client.get("/?category=public_health&size=2&page=3").text) == [1]
    assert "pager" not in client.get("/?category=medical_dispute").text.split("</header>")[1]  # one page: no links
    assert 'href="?category=public_health&amp;size=2&amp;page=2&amp;lang=en">English<' in page  # same page, in English


def test_watch_and_closed_one_click_away(client, svc):
    _bulk_incidents(svc, 2)
    _bulk_incidents(svc, 1, stage="watch")
    _bulk_incidents(svc, 1, stage="closed")
    login(client, "duty_officer")
    board = client.get("/?category=medical_dispute").text
    assert 'href="/?view=watch&amp;category=medical_dispute"' in board
    assert 'href="/?view=closed&amp;category=medical_dispute"' in board
    assert _ids(board) == [2, 1]
    assert _ids(client.get("/?view=watch").text) == [3]
    closed = client.get("/?view=closed").text
    assert _ids(closed) == [4]
    assert '<option value="closed"' in closed and '<option value="monitoring"' not in closed  # its own stages


class _Text(HTMLParser):
    """The words a reader sees: text outside script/style, plus title, aria-label and placeholder."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [v for k, v in attrs if k in ("title", "aria-label", "placeholder") and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def raw_keys(html: str, keys: set[str]) -> set[str]:
    """Engine keys (or any snake_case word) visible on a page."""
    parser = _Text()
    parser.feed(html)
    words = set(re.findall(r"[A-Za-z][A-Za-z_]+", " ".join(parser.parts)))
    return {w for w in words if w in keys or "_" in w}


def engine_keys(svc) -> set[str]:
    keys = {k for table in labels.CATALOGUE.values() for k in table} | set(svc.playbooks.categories)
    return keys | {"in_review", "approved", "rejected", "released", "open", "done", "waived", "cancelled"}


def _busy_incident(svc, clock):
    """An incident with a bit of everything: done and open tasks, an escalation, a reviewed statement, a note."""
    inc = open_incident(svc, "网传患者投诉")
    for trigger, kw in (("report", {}), ("assess", {"decision": "activate", "severity": "II"})):
        stage = svc.incident(inc.id).stage
        for t in svc.tasks(inc.id):
            if t.status == "open" and t.stage == stage:
                svc.complete_task(t.id, principal=LEAD)
        svc.fire(inc.id, trigger, principal=LEAD, **kw)
    svc.update_signals(inc.id, {"reposts": 500, "comments": 80}, principal=DO)
    st = svc.draft_statement(inc.id, title="关于网传情况的说明", body="我院高度重视，后续进展将及时公布。",
                             principal=Principal(person="publicity_head", auth="cli"))
    svc.review_statement(st.id, approve=True, principal=Principal(person="info_staff", auth="cli"))
    svc.note(inc.id, "note", "家属已到场", principal=DO)
    escalate_to(svc, clock, "oncall_admin")
    return inc


def test_chinese_pages_show_labels_never_engine_keys(client, svc, clock):
    inc = _busy_incident(svc, clock)
    _bulk_incidents(svc, 1, stage="watch", category="public_health")
    _bulk_incidents(svc, 1, stage="dismissed", category="privacy_leak")
    clock.advance(timedelta(minutes=1))
    keys = engine_keys(svc)
    for who in ("duty_officer", "oncall_admin"):
        client.cookies.clear()
        login(client, who)
        for path in ("/", "/?view=watch", "/?view=closed", f"/incidents/{inc.id}", "/my",
                     "/playbooks?category=workplace_violence&grade=I", "/password", "/drills",
                     f"/incidents/{inc.id}/report?rlang=zh-CN", f"/incidents/{inc.id}/report?kind=after_action"):
            if path == "/drills" and who == "oncall_admin":
                continue  # not theirs to see (policy.may_view_drills)
            res = client.get(path)
            assert res.status_code == 200, path
            assert raw_keys(res.text, keys) == set(), (who, path)
    page = client.get(f"/incidents/{inc.id}").text
    assert "医疗纠纷" in page or "医患纠纷" in page  # the category by its playbook's name
    en = client.get(f"/incidents/{inc.id}?lang=en").text
    assert "medical_dispute" not in en.split("</header>")[1]


def test_raw_key_scan_can_fail():
    assert raw_keys("<p>阶段 medical_dispute</p>", {"medical_dispute"}) == {"medical_dispute"}
    assert raw_keys('<p title="in_review">ok</p><script>var open_x = 1</script>', set()) == {"in_review"}
    assert raw_keys("<p>已完成 done</p>", {"done"}) == {"done"}
