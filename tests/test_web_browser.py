"""The web pages in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium) against a
real uvicorn on 127.0.0.1: the duty officer works an incident, the on-call administrator acknowledges from a
one-tap link in a second browser, the first browser's board updates without a reload, a stale page gets the
conflict message, a tampered link changes nothing. Screenshots go to store/screenshots/ (not committed)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from web_support import ACK_SECRET, PW, escalate_to, make_app, open_incident

from crisis import acklink
from crisis.principal import Principal

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not "
                                "installed (.ci/run installs them)")
SHOTS = Path(__file__).resolve().parents[1] / "store" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


@pytest.fixture()
def server(svc) -> Iterator[str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(make_app(svc), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture()
def browser() -> Iterator[Callable[[], object]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def make() -> object:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM or ""
        for f in FLAGS:
            opts.add_argument(f)
        opts.add_argument("--window-size=1280,1000")
        d = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
        d.set_page_load_timeout(20)
        drivers.append(d)
        return d

    yield make
    for d in drivers:
        d.quit()


def wait(cond: Callable[[], object], what: str, seconds: float = 12) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def click_to_new_page(d, element) -> None:
    """Click and wait for the next document to finish loading: the old one carries a mark the new one lacks
    (no element of the old page is touched after the click, so no stale-element or inspector errors)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    d.execute_script("window.__oldPage = true")
    element.click()

    def loaded(drv) -> bool:
        return bool(drv.execute_script("return !window.__oldPage && document.readyState === 'complete'"))

    WebDriverWait(d, 15, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)).until(loaded)


def shoot(d, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        d.set_window_size(width, 1400)
        time.sleep(0.2)
        d.save_screenshot(str(SHOTS / f"{name}-{width}.png"))
    d.set_window_size(1280, 1000)


def test_duty_officer_and_on_call_admin_in_two_browsers(svc, clock, server, browser):
    from selenium.webdriver.common.by import By

    watched = open_incident(svc, "夜间急诊候诊过久引发网络投诉 <script>alert(1)</script>")
    esc = escalate_to(svc, clock, "oncall_admin")
    inc = open_incident(svc, "网传医生收红包视频")
    a = browser()
    a.get(f"{server}/login")
    a.find_element(By.NAME, "person").send_keys("duty_officer")
    a.find_element(By.NAME, "password").send_keys(PW)
    a.find_element(By.CSS_SELECTOR, "form button").click()
    wait(lambda: "看板" in a.title or "看板" in a.page_source, "the board")
    assert a.execute_script("return document.querySelectorAll('script:not([src])').length") == 1  # skew only
    shoot(a, "board")

    a.get(f"{server}/incidents/{inc.id}")
    while True:  # complete the monitoring tasks one by one, as the page offers them
        buttons = a.find_elements(By.CSS_SELECTOR, "form[action^='/tasks/'] button")
        if not buttons:
            break
        click_to_new_page(a, buttons[0])
        assert "/incidents/" in a.current_url
    assert all(t.status == "done" for t in svc.tasks(inc.id))
    a.find_element(By.CSS_SELECTOR, "form.fire input[value='report'] ~ button").click()
    wait(lambda: svc.incident(inc.id).stage == "reported", "report fired")
    shoot(a, "incident")

    # a stale page: someone else records signals meanwhile; acting on the old page is refused
    a.get(f"{server}/incidents/{inc.id}")
    svc.update_signals(inc.id, {"reposts": 500}, principal=Principal(person="info_staff", auth="cli"))
    before = svc.incident(inc.id).stage
    forms = a.find_elements(By.CSS_SELECTOR, "form.fire button, form[action^='/tasks/'] button")
    assert forms, "the duty officer has an action on the reported incident"
    forms[0].click()
    wait(lambda: "他人已修改此事件" in a.page_source, "the conflict message")
    assert svc.incident(inc.id).stage == before

    # the board, left open, updates without a reload when the on-call admin acknowledges elsewhere
    a.get(f"{server}/")
    card = f"li[data-incident='{watched.id}']"
    before_text = a.find_element(By.CSS_SELECTOR, card).text
    a.execute_script("window.notReloaded = true")
    b = browser()
    link = acklink.sign(ACK_SECRET, esc.id, "oncall_admin", clock.now())
    tampered = link[:-2] + ("xx" if not link.endswith("xx") else "yy")
    b.get(f"{server}/ack/{tampered}")
    assert "此确认链接无法使用" in b.page_source
    assert not b.find_elements(By.CSS_SELECTOR, "form[action^='/ack/']")
    b.get(f"{server}/ack/{link}")
    assert "谢值班" in b.page_source
    shoot(b, "ack")
    b.find_element(By.CSS_SELECTOR, "form[action^='/ack/'] button").click()
    wait(lambda: "已确认" in b.page_source, "the acknowledgement page")
    assert next(e for e in svc.escalations(watched.id) if e.id == esc.id).acked_by == "oncall_admin"
    wait(lambda: a.find_element(By.CSS_SELECTOR, card).text != before_text, "the board to update")
    new = open_incident(svc, "新的舆情线索")
    wait(lambda: a.find_elements(By.CSS_SELECTOR, f"li[data-incident='{new.id}']"),
         "a new incident on the board")
    assert a.execute_script("return window.notReloaded === true")
    b.get(f"{server}/ack/{link}")
    assert "此确认链接无法使用" in b.page_source  # used once already
