"""The issue's whole scenario in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium)
against a real uvicorn on 127.0.0.1, with notifications delivered the way `crisis serve` delivers them (the
deployment's channels from the settings, CRISIS_PUBLIC_URL = this server), so every acknowledgement link the
test opens is read from a real message in the notification file, as a phone would receive it.

The duty officer signs in, opens an incident from the board, completes the monitoring tasks and fires report;
the president (a second browser) completes the assessment task and fires assess with a grade and a decision
in the form; the duty officer's page, left open meanwhile, is stale and gets the conflict message. On a phone
(a third browser, 390 px, never signed in) the on-call administrator opens the link from their escalation
message and acknowledges; the duty officer's board updates without a reload. A tampered link, a link whose
task is done, a used one and one past 24 h change nothing. Screenshots of every page at 1280 and 390 px go to
store/screenshots/ (not committed), each checked for horizontal overflow."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import DRILLS_DIR, Cli, crisis_env
from web_support import ACK_SECRET, FAST_HASH, PW, open_incident

from crisis.principal import Principal

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not "
                                "installed (.ci/run installs them)")
SHOTS = Path(__file__).resolve().parents[1] / "store" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--hide-scrollbars")
WAIT = 20.0  # seconds any one expected change may take on a loaded machine
DO = Principal(person="duty_officer", auth="session")


# ---------------------------------------------------------------------------- the server and its delivery
class Site:
    """The running app: its URL, the notification file its delivery writes, and `deliver()` (what the
    scheduler does after it fires deadlines)."""

    def __init__(self, url: str, notify_file: Path, deliver: Callable[[], Any]) -> None:
        self.url, self.notify_file, self.deliver = url, notify_file, deliver

    def messages(self) -> list[dict[str, Any]]:
        if not self.notify_file.exists():
            return []
        return [json.loads(line) for line in self.notify_file.read_text("utf-8").splitlines() if line.strip()]

    def ack_link(self, recipient: str, escalation: int) -> str:
        """The link in the escalation message `recipient` received (the text a phone shows)."""
        for m in self.messages():
            if m["kind"] == "escalation" and m["to"] == recipient and m["payload"].get("escalation") == escalation:
                found = re.search(r"(https?://\S+/ack/[A-Za-z0-9_.=-]+)", m["body"])
                assert found, f"no link in the message text: {m['body']!r}"
                assert found.group(1).startswith(self.url + "/ack/")
                return found.group(1)
        raise AssertionError(f"no escalation #{escalation} message to {recipient} in {self.notify_file}")


@pytest.fixture(scope="module")
def drills_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real `crisis drill run` (Markdown reports), for the drills page."""
    tmp = tmp_path_factory.mktemp("drills")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in crisis_env(tmp, db=False).items():
            mp.setenv(name, value)
        Cli(tmp)("drill", "run", str(DRILLS_DIR / "medical-dispute-viral.yaml"), "--out",
                 str(tmp / "reports" / "run-a"), "--db", f"sqlite:///{tmp / 'a.db'}")
    return tmp / "reports"


@pytest.fixture()
def site(svc, tmp_path, monkeypatch, drills_dir) -> Iterator[Site]:
    import uvicorn

    from crisis.accounts import Accounts
    from crisis.bootstrap import build_dispatcher
    from crisis.http.app import create_app
    from crisis.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("CRISIS_PUBLIC_URL", url)
    monkeypatch.setenv("CRISIS_ACK_SECRET", ACK_SECRET.decode())
    monkeypatch.setenv("CRISIS_NOTIFY_FILE", str(tmp_path / "notifications.jsonl"))
    settings = Settings()
    delivery = build_dispatcher(settings, svc)
    svc.after_commit = delivery.drain  # as `crisis serve --no-scheduler`: deliver after each command
    accounts = Accounts(svc.engine, svc.roster, svc.clock, hasher=FAST_HASH)
    for p in svc.roster.people:
        accounts.set_password(p.id, PW, by="president")
    assert settings.notify.ack_secret
    app = create_app(svc, accounts, tz=settings.tz, ack_secret=settings.notify.ack_secret.encode())
    app.state.drills_dir = drills_dir
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Site(url, settings.notify_file, delivery.drain)
    srv.should_exit = True
    thread.join(10)


# ---------------------------------------------------------------------------- browsers
@pytest.fixture()
def browser() -> Iterator[Callable[..., Any]]:
    """make(phone=False): a fresh browser (its own profile: cookies are not shared), a desktop 1280 px wide
    or a phone 390 px wide (mobile emulation: the page's viewport meta applies)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def make(phone: bool = False) -> Any:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM or ""
        for f in FLAGS:
            opts.add_argument(f)
        opts.add_argument("--window-size=1280,1000")
        d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
        d.set_page_load_timeout(30)
        drivers.append(d)
        d.phone = phone
        view(d, 390 if phone else 1280)
        return d

    yield make
    for d in drivers:
        d.quit()


def view(d, width: int, height: int = 900) -> None:
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                            "deviceScaleFactor": 1, "mobile": width < 600})


def until(d, cond: Callable[[Any], Any], what: str) -> Any:
    """An explicit wait: poll `cond` (errors from a page being replaced count as "not yet")."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(d, WAIT, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)).until(cond)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what} (at {d.current_url})") from None


def go(d, url: str) -> None:
    d.get(url)
    until(d, lambda drv: drv.execute_script("return document.readyState") == "complete", f"{url} to load")


def click_to_new_page(d, css: str) -> None:
    """Click the element and wait for the next document to finish loading: the old one carries a mark the new
    one lacks (no element of the old page is touched after the click: no stale-element errors)."""
    from selenium.webdriver.common.by import By

    d.execute_script("window.__oldPage = true")
    d.find_element(By.CSS_SELECTOR, css).click()
    until(d, lambda drv: drv.execute_script("return !window.__oldPage && document.readyState === 'complete'"),
          f"the page after clicking {css}")


def text(d) -> str:
    return str(d.execute_script("return document.body.innerText"))


def sign_in(d, site: Site, person: str) -> None:
    from selenium.webdriver.common.by import By

    go(d, f"{site.url}/login")
    d.find_element(By.NAME, "person").send_keys(person)
    d.find_element(By.NAME, "password").send_keys(PW)
    click_to_new_page(d, "form[action='/login'] button")
    assert "/login" not in d.current_url, text(d)


def shoot(d, name: str) -> None:
    """The whole page at 1280 and at 390 px as PNGs; neither may scroll sideways (text overflowing)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        view(d, width)
        height = int(d.execute_script("return Math.min(document.documentElement.scrollHeight, 6000)"))
        view(d, width, max(height, 600))
        overflow = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
        png = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
        (SHOTS / f"{name}-{width}.png").write_bytes(base64.b64decode(png))
    view(d, 390 if d.phone else 1280)


# ---------------------------------------------------------------------------- the scenario
def page_forbids(d, site: Site, link: str, words: str) -> None:
    """Open the link: a clear refusal, no button; a POST to it is refused too (nothing changes)."""
    from selenium.webdriver.common.by import By

    go(d, link)
    assert words in text(d) and "未做任何更改" in text(d), text(d)
    assert not d.find_elements(By.CSS_SELECTOR, "form[action^='/ack/']")
    status = d.execute_async_script("const done = arguments[arguments.length - 1];"
                                    "fetch(arguments[0], {method: 'POST'}).then(r => done(r.status));", link)
    assert status == 403


def test_the_issue_scenario_in_three_browsers(svc, clock, site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    watched = open_incident(svc, "夜间急诊候诊过久引发网络投诉 <script>alert(1)</script>")
    inc = open_incident(svc, "网传医生收红包视频，转发量快速上升，评论区出现大量质疑声音")
    for _ in range(40):  # deadlines pass (virtual clock) until the on-call administrator is paged
        mine = [e for e in svc.escalations(watched.id, pending=True) if e.recipient == "oncall_admin"]
        if mine:
            break
        clock.advance(timedelta(minutes=30))
        svc.tick()
        site.deliver()  # what the scheduler does after firing
    esc = mine[0]
    link = site.ack_link("oncall_admin", esc.id)
    compile_task = next(t for t in svc.tasks(inc.id) if t.key == "compile_report")
    paged = next(e for e in svc.escalations(inc.id) if e.task_id == compile_task.id)
    done_link = site.ack_link(paged.recipient, paged.id)  # expires once the task is done

    # the duty officer, at a desk
    a = browser()
    go(a, f"{site.url}/")
    assert "/login" in a.current_url
    shoot(a, "login")
    sign_in(a, site, "duty_officer")
    assert "看板" in text(a)
    assert a.execute_script("return document.querySelectorAll('script:not([src])').length") == 1  # skew only
    shoot(a, "board")
    click_to_new_page(a, f"li[data-incident='{inc.id}'] a.title")
    assert a.current_url.endswith(f"/incidents/{inc.id}")
    for task in [t for t in svc.tasks(inc.id) if t.stage == "monitoring"]:  # as the page offers them
        click_to_new_page(a, f"li[data-task='{task.id}'] form button")
        assert "/incidents/" in a.current_url, text(a)
    assert all(t.status == "done" for t in svc.tasks(inc.id) if t.stage == "monitoring")
    click_to_new_page(a, "form.fire input[value='report'] ~ button")
    assert svc.incident(inc.id).stage == "reported"
    verify = next(t for t in svc.tasks(inc.id) if t.key == "verify_facts")
    click_to_new_page(a, f"li[data-task='{verify.id}'] form button")
    shoot(a, "incident")
    assess_task = next(t for t in svc.tasks(inc.id) if t.key == "assess_severity")
    assert a.find_elements(By.CSS_SELECTOR, f"li[data-task='{assess_task.id}'] form button")  # left open here

    # leadership, between meetings: the assessment task, then assess with grade and decision from the form
    p = browser()
    sign_in(p, site, "president")
    go(p, f"{site.url}/incidents/{inc.id}")
    click_to_new_page(p, f"li[data-task='{assess_task.id}'] form button")
    form = "form.fire:has(input[name='trigger'][value='assess'])"
    Select(p.find_element(By.CSS_SELECTOR, f"{form} select[name='severity']")).select_by_value("II")
    Select(p.find_element(By.CSS_SELECTOR, f"{form} select[name='decision']")).select_by_value("activate")
    click_to_new_page(p, f"{form} button")
    now = svc.incident(inc.id)
    assert (now.stage, now.severity) == ("assessing", "II"), text(p)

    # the duty officer's page is stale now: acting on it is refused with the conflict message
    click_to_new_page(a, f"li[data-task='{assess_task.id}'] form button")
    assert "他人已修改此事件" in text(a) and "未做任何更改" in text(a)
    assert "您打开此页面后发生了" in text(a) and "王院长 阶段变更（已报告 → 评估与指令）" in text(a)  # what, in words
    shoot(a, "conflict")
    assert next(t for t in svc.tasks(inc.id) if t.id == assess_task.id).done_by == "president"
    assert svc.incident(inc.id).version == now.version

    # the board, left open, updates without a reload when the on-call administrator acknowledges by phone
    go(a, f"{site.url}/")
    card = f"li[data-incident='{watched.id}']"
    before = a.find_element(By.CSS_SELECTOR, card).text
    assert "升级未确认" in before
    a.execute_script("window.notReloaded = true")
    b = browser(phone=True)
    tampered = link[:-2] + ("xx" if not link.endswith("xx") else "yy")
    page_forbids(b, site, tampered, "确认链接无效")
    shoot(b, "ack-refused")
    page_forbids(b, site, done_link, "此链接已失效")
    go(b, link)
    assert "谢值班" in text(b) and watched.title.split()[0] in text(b)
    assert b.find_element(By.CSS_SELECTOR, "form[action^='/ack/'] button").size["width"] >= 300  # thumb-sized
    shoot(b, "ack")
    click_to_new_page(b, "form[action^='/ack/'] button")
    assert "已确认" in text(b)
    assert next(e for e in svc.escalations(watched.id) if e.id == esc.id).acked_by == "oncall_admin"
    told = {m["to"] for m in site.messages() if m["kind"] == "acknowledged"}
    assert told and "oncall_admin" not in told  # the people paged before hear it
    until(a, lambda drv: drv.find_element(By.CSS_SELECTOR, card).text != before, "the board to update")
    new = open_incident(svc, "新的舆情线索")
    until(a, lambda drv: drv.find_elements(By.CSS_SELECTOR, f"li[data-incident='{new.id}']"),
          "a new incident on the board")
    assert a.execute_script("return window.notReloaded === true")
    page_forbids(b, site, link, "此链接已使用过")

    # the other pages, looked at
    for path, name in (("/my", "my"), ("/playbooks?category=medical_dispute&grade=I", "playbooks"),
                       (f"/incidents/{inc.id}/report", "report")):
        go(a, site.url + path)
        assert "/login" not in a.current_url
        shoot(a, name)
    go(p, f"{site.url}/drills")
    assert "演练" in text(p) and "run-a" in p.page_source
    shoot(p, "drills")

    # a day later every link from that night has expired, used or not
    unused = next(e for e in svc.escalations(inc.id) if e.acked_at is None and e.task_id != compile_task.id)
    late_link = site.ack_link(unused.recipient, unused.id)
    clock.advance(timedelta(hours=25))
    page_forbids(b, site, late_link, "已过期")
    assert next(e for e in svc.escalations(inc.id) if e.id == unused.id).acked_at is None
