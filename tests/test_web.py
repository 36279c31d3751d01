"""The web pages through the real app (TestClient): each page renders, each refusal is a clear page and
changes nothing, only the buttons a person may press appear, user text is escaped, the board's query count
does not grow with the number of incidents."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from web_support import ACK_SECRET, escalate_to, login, make_app, open_incident

from crisis import acklink
from crisis.principal import Principal

DO = Principal(person="duty_officer", auth="cli")


@pytest.fixture()
def client(svc):
    with TestClient(make_app(svc), raise_server_exceptions=True) as c:
        yield c


def test_pages_need_sign_in_and_login_refuses_wrong_password(client):
    for path in ("/", "/my", "/incidents/1", "/playbooks", "/password", "/drills", "/board/rows",
                 "/incidents/1/report", "/drills/view/x.md", "/incidents/1/report/incident_report.en.md"):
        res = client.get(path, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"] == f"/login?next={path}", path
    for path in ("/board/rows", "/incidents/1/report"):  # an htmx fragment's slot never fills with the login page
        assert client.get(path, headers={"HX-Request": "true"}, follow_redirects=False).status_code == 401, path
    for path in ("/incidents/1/fire", "/tasks/1/done", "/incidents/1/note", "/logout"):  # before the form is read
        res = client.post(path, data={}, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/login"), path
    res = client.post("/login", data={"person": "duty_officer", "password": "nope", "next": "/"})
    assert res.status_code == 401 and "登录" in res.text
    assert "crisis_session" not in client.cookies


def test_board_lists_open_incidents_in_chinese_and_english(client, svc):
    open_incident(svc)
    login(client, "duty_officer")
    page = client.get("/")
    assert page.status_code == 200
    assert "看板" in page.text and "监测" in page.text  # default language zh-CN; stage label from labels
    assert "&lt;b&gt;护士&lt;/b&gt;" in page.text and "<b>护士</b>" not in page.text  # user text escaped
    assert 'hx-trigger="every 3s"' in page.text and "/static/htmx.min.js" in page.text
    en = client.get("/?lang=en")
    assert "Board" in en.text and "1 incidents" in en.text
    assert "Board" in client.get("/").text  # the choice is remembered in a cookie
    assert client.get("/static/htmx.min.js").status_code == 200


def test_board_filters_and_rows_partial(client, svc):
    inc = open_incident(svc)
    login(client, "duty_officer")
    assert f"#{inc.id}" in client.get("/board/rows").text
    assert f"#{inc.id}" not in client.get("/board/rows?view=closed").text
    assert f"#{inc.id}" not in client.get("/?stage=responding").text
    assert f"#{inc.id}" in client.get("/?category=medical_dispute").text


def test_incident_page_offers_only_allowed_actions(client, svc):
    inc = open_incident(svc)
    login(client, "logistics_staff")  # not in monitoring: may not complete its tasks
    page = client.get(f"/incidents/{inc.id}").text
    assert "/tasks/" not in page
    client.post("/logout", data={"csrf_token": login(client, "logistics_staff")})
    client.cookies.clear()
    login(client, "duty_officer")
    page = client.get(f"/incidents/{inc.id}").text
    assert "/tasks/" in page and 'name="version"' in page and "<svg" in page


def test_complete_tasks_fire_and_stale_version(client, svc):
    inc = open_incident(svc)
    csrf = login(client, "duty_officer")
    for t in svc.tasks(inc.id):
        v = svc.incident(inc.id).version
        res = client.post(f"/tasks/{t.id}/done", data={"csrf_token": csrf, "incident": inc.id, "version": v},
                          follow_redirects=False)
        assert res.status_code == 303, res.text
    assert all(t.status == "done" for t in svc.tasks(inc.id))
    stale = svc.incident(inc.id).version
    svc.update_signals(inc.id, {"reposts": 99}, principal=DO)  # someone else acts meanwhile
    res = client.post(f"/incidents/{inc.id}/fire", data={"csrf_token": csrf, "trigger": "report", "version": stale})
    assert res.status_code == 409 and "他人已修改此事件" in res.text
    assert "您打开此页面后发生了：" in res.text and "林值班 舆情数据更新" in res.text  # what was missed, in words
    assert "changed since version" not in res.text  # not the engine's English
    assert svc.incident(inc.id).stage == "monitoring"
    fresh = svc.incident(inc.id).version
    res = client.post(f"/incidents/{inc.id}/fire", data={"csrf_token": csrf, "trigger": "report", "version": fresh},
                      follow_redirects=False)
    assert res.status_code == 303 and svc.incident(inc.id).stage == "reported"


def test_write_without_csrf_is_refused(client, svc):
    inc = open_incident(svc)
    login(client, "duty_officer")
    v = svc.incident(inc.id).version
    res = client.post(f"/incidents/{inc.id}/fire", data={"trigger": "report", "version": v})
    assert res.status_code == 403 and svc.incident(inc.id).stage == "monitoring"


def test_not_allowed_action_is_a_clear_page(client, svc):
    inc = open_incident(svc)
    csrf = login(client, "logistics_staff")
    task = svc.tasks(inc.id)[0]
    res = client.post(f"/tasks/{task.id}/done",
                      data={"csrf_token": csrf, "incident": inc.id, "version": svc.incident(inc.id).version})
    assert res.status_code == 403 and "未做任何更改" in res.text
    assert svc.tasks(inc.id)[0].status == "open"


def test_ack_link_once_and_refusals(client, svc, clock):
    inc = open_incident(svc)
    esc = escalate_to(svc, clock, "oncall_admin")
    now = clock.now()
    good = acklink.sign(ACK_SECRET, esc.id, "oncall_admin", now)
    page = client.get(f"/ack/{good}")
    assert page.status_code == 200 and "谢值班" in page.text and inc.title.split()[0] in page.text
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    other = acklink.sign(ACK_SECRET, esc.id, "president", now)
    expired = acklink.sign(ACK_SECRET, esc.id, "oncall_admin", now - timedelta(hours=25))
    for bad in (tampered, other, expired, "garbage"):
        assert client.post(f"/ack/{bad}").status_code == 403
        assert client.get(f"/ack/{bad}").status_code == 403
    assert next(e for e in svc.escalations(inc.id) if e.id == esc.id).acked_at is None
    res = client.post(f"/ack/{good}")
    assert res.status_code == 200 and "已确认" in res.text
    done = next(e for e in svc.escalations(inc.id) if e.id == esc.id)
    assert done.acked_by == "oncall_admin"
    again = client.post(f"/ack/{good}")
    assert again.status_code == 403 and "此链接已使用过：谢值班 已确认" in again.text


def test_my_work_and_playbooks_and_password(client, svc):
    inc = open_incident(svc)
    login(client, "duty_officer")
    assignees = {t.assignee for t in svc.tasks(inc.id)}
    client.cookies.clear()
    who = sorted(assignees)[0]
    csrf = login(client, who)
    assert f"#{inc.id}" in client.get("/my").text
    book = client.get("/playbooks?category=medical_dispute&grade=I").text
    assert "预案" in book and "逾期后依次督办：责任人 → 组长 → 领导小组组长 → 值班管理员，每隔 10m" in book
    assert client.get("/playbooks?grade=IX").status_code == 422
    res = client.post("/password", data={"csrf_token": csrf, "current": "wrong", "new": "another long secret"})
    assert res.status_code == 401
    res = client.post("/password", data={"csrf_token": csrf, "current": "correct horse battery",
                                         "new": "another long secret"})
    assert res.status_code == 200 and "密码已修改" in res.text
    assert client.get("/my").status_code == 200  # this browser stays signed in
    res = client.post("/password", data={"csrf_token": csrf, "current": "another long secret", "new": "aaaaaaaaaaaa"})
    assert res.status_code == 422 and "5 different characters" in res.text


def test_board_query_count_does_not_grow_with_incidents(client, svc):
    login(client, "duty_officer")
    open_incident(svc)
    counts = []
    statements: list[str] = []

    def count(*_a: object) -> None:
        statements.append("q")

    event.listen(svc.engine, "before_cursor_execute", count)
    try:
        for n in (1, 12):
            while len(svc.incidents(include_final=False)) < n:
                open_incident(svc, f"事件 {n}")
            statements.clear()
            assert client.get("/board/rows").status_code == 200
            counts.append(len(statements))
    finally:
        event.remove(svc.engine, "before_cursor_execute", count)
    assert counts[0] == counts[1], counts


def test_note_lands_in_timeline_escaped(client, svc):
    inc = open_incident(svc)
    csrf = login(client, "duty_officer")
    res = client.post(f"/incidents/{inc.id}/note", data={"csrf_token": csrf, "text": "家属到场 <i>x</i>"})
    assert res.status_code == 200 and "家属到场 &lt;i&gt;x&lt;/i&gt;" in res.text  # followed the redirect back
    assert any(e.kind == "note" for e in svc.timeline(inc.id))


def test_a_blocked_or_forbidden_move_says_why_in_the_pages_language(client, svc):
    """Open required tasks block a move: the page says so (not "someone changed this"), naming the stage and the
    tasks by their titles, and how leadership may go on; a move the rules refuse names the rule, in Chinese."""
    inc = open_incident(svc)
    csrf = login(client, "president")
    v = svc.incident(inc.id).version
    res = client.post(f"/incidents/{inc.id}/fire", data={"csrf_token": csrf, "trigger": "report", "version": v})
    assert res.status_code == 409 and "当前阶段不能执行此操作" in res.text and "他人已修改" not in res.text
    assert "“事件监测”阶段仍有必做任务未完成：汇总基本事实、舆情走势与可能影响并报告领导小组" in res.text
    assert "越过未完成任务" in res.text and "compile_report" not in res.text and "--override" not in res.text
    en = client.post(f"/incidents/{inc.id}/fire?lang=en", data={"csrf_token": csrf, "trigger": "report", "version": v})
    assert en.status_code == 409 and "Not possible at this stage" in en.text
    assert "The stage “Monitoring” still has required tasks open: Report facts, opinion trend and likely impact" in (
        en.text.replace("&#34;", '"'))
    client.post("/logout", data={"csrf_token": csrf})
    client.cookies.clear()
    csrf = login(client, "logistics_staff")
    res = client.post(f"/incidents/{inc.id}/fire?lang=zh-CN", data={"csrf_token": csrf, "trigger": "assess",
                                                                   "version": v})
    assert res.status_code == 403 and "无权操作" in res.text and "研判由领导小组决定" in res.text
    assert "leadership" not in res.text
    assert svc.incident(inc.id).stage == "monitoring"  # nothing changed


def test_a_refused_form_field_is_named_in_the_pages_language(client, svc):
    inc = open_incident(svc)
    csrf = login(client, "president")
    v = svc.incident(inc.id).version
    res = client.post(f"/incidents/{inc.id}/fire", data={"csrf_token": csrf, "trigger": "report", "version": v,
                                                         "override": "1", "reason": "  "})
    assert res.status_code == 422 and "请检查填写的内容" in res.text and "理由：须填写理由" in res.text
    res = client.post(f"/incidents/{inc.id}/note", data={"csrf_token": csrf, "text": " \t "})
    assert res.status_code == 422 and "备注：不能为空" in res.text and "must not" not in res.text
    res = client.post(f"/incidents/{inc.id}/note", data={"csrf_token": csrf, "text": "长" * 2001})
    assert res.status_code == 422 and "备注：共 2001 字，最多 2000 字" in res.text
    en = client.post(f"/incidents/{inc.id}/note?lang=en", data={"csrf_token": csrf, "text": " "})
    assert en.status_code == 422 and "note: must not be empty" in en.text  # the field as the form names it
    assert svc.incident(inc.id).stage == "monitoring" and svc.incident(inc.id).version == v  # nothing changed


def test_a_missing_record_leads_back_to_the_board(client, svc):
    csrf = login(client, "duty_officer")
    note = client.post("/incidents/999/note", data={"csrf_token": csrf, "text": "x"})
    for res in (client.get("/incidents/999"), note):
        assert res.status_code == 404 and "未找到" in res.text
        assert '<a class="button" href="/">返回看板</a>' in res.text and "/incidents/999" not in res.text


@pytest.mark.parametrize(("path", "zh", "en"), [
    ("/incidents/999/note", "事件 #999 不存在", "Incident #999 does not exist"),
    ("/tasks/999/done", "任务 #999 不存在", "Task #999 does not exist"),
    ("/statements/999/review", "声明 #999 不存在", "Statement #999 does not exist"),
])
def test_a_missing_record_is_named_in_the_pages_language(client, path, zh, en):
    """The kind and number of what is not there, worded by the page (the engine's "no incident #999" is English)."""
    csrf = login(client, "president")
    form = {"csrf_token": csrf, "text": "x", "incident": 1, "version": 0, "level": 1, "approve": "yes"}
    for lang, words in (("zh-CN", zh), ("en", en)):
        res = client.post(f"{path}?lang={lang}", data=form)
        engine_words = f"no {path.split('/')[1][:-1]} #999"  # e.g. "no task #999"
        assert res.status_code == 404 and words in res.text and engine_words not in res.text
