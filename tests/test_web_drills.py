"""The drills page: the runs `crisis drill run` left (a real run through the CLI), their scorecard figures and
report files, only for the people the policy lets see drill results; hostile text in a scorecard or report
stays text; file links cannot reach anything but a run's reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import DRILLS_DIR, Cli, crisis_env
from test_web_pages import engine_keys, raw_keys
from web_support import login, make_app

from crisis import views


@pytest.fixture(scope="module")
def drills_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real drill run (CLI, Markdown and PDF reports) and one run whose scorecard and report carry hostile
    text, plus a broken scorecard that the list leaves out."""
    tmp = tmp_path_factory.mktemp("drills")
    root = tmp / "reports"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in crisis_env(tmp, db=False).items():
            mp.setenv(name, value)
        Cli(tmp)("drill", "run", str(DRILLS_DIR / "medical-dispute-viral.yaml"), "--out", str(root / "run-a"),
                 "--db", f"sqlite:///{tmp / 'a.db'}", "--format", "pdf")
    hostile = root / "run-b"
    shutil.copytree(root / "run-a", hostile)
    doc = json.loads((hostile / "scorecard.json").read_text("utf-8"))
    doc["scenario"]["title_zh"] = '<script>alert("x")</script>演练'
    doc["scenario"]["category"] = "nonexistent_category"
    (hostile / "scorecard.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    (hostile / "incident_report.zh-CN.md").write_text("# 报告\n\n<img src=x onerror=alert(1)> 正文\n", "utf-8")
    for f in hostile.glob("*.pdf"):
        f.unlink()
    (root / "run-c").mkdir()
    (root / "run-c" / "scorecard.json").write_text("{not json", "utf-8")
    (root / "secret.md").write_text("not a report", "utf-8")
    return root


@pytest.fixture()
def client(svc, drills_dir):
    app = make_app(svc)
    app.state.drills_dir = drills_dir
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


def test_drill_runs_view_reads_scorecards_newest_first(drills_dir):
    runs = views.drill_runs(drills_dir)
    assert [r.folder for r in runs] == ["run-b", "run-a"]  # run-c's broken scorecard is left out
    a = runs[1]
    assert a.metrics["time_to_report_seconds"] == 26 * 60 and a.scenario["name"] == "medical-dispute-viral"
    assert a.reports[("incident_report", "zh-CN")] == ["md", "pdf"]
    assert runs[0].reports[("incident_report", "zh-CN")] == ["md"]
    assert views.drill_runs(drills_dir / "missing") == []


def test_drills_page_lists_runs_with_figures_and_report_links(client, svc):
    login(client, "duty_officer")
    page = client.get("/drills")
    assert page.status_code == 200
    html = page.text
    assert "术后死亡网络发酵" in html and "医疗纠纷" in html and "26m" in html  # title, category label, figure
    assert 'href="/drills/view/run-a/incident_report.zh-CN.md"' in html
    assert 'href="/drills/files/run-a/after_action.en.pdf"' in html
    assert 'href="/drills/files/run-b/after_action.en.pdf"' not in html  # only the files that exist
    assert '<a href="/drills">' in html  # the nav offers it to whoever may see it
    assert raw_keys(html.replace("nonexistent_category", ""), engine_keys(svc)) == set()
    assert "Post-operative death" in client.get("/drills?lang=en").text


def test_drill_reports_open_and_download(client, drills_dir):
    login(client, "president")
    view = client.get("/drills/view/run-a/incident_report.zh-CN.md")
    assert view.status_code == 200 and "<table>" in view.text and "<h1>" in view.text
    assert 'href="/drills/files/run-a/incident_report.zh-CN.pdf"' in view.text
    md = client.get("/drills/files/run-a/scorecard.en.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "attachment" in md.headers["content-disposition"]
    assert md.text == (drills_dir / "run-a" / "scorecard.en.md").read_text("utf-8")
    pdf = client.get("/drills/files/run-a/incident_report.zh-CN.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_hostile_text_in_drill_files_stays_text(client):
    login(client, "duty_officer")
    html = client.get("/drills").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;演练" in html
    view = client.get("/drills/view/run-b/incident_report.zh-CN.md").text
    assert "<img" not in view and "&lt;img src=x onerror=alert(1)&gt;" in view


@pytest.mark.parametrize("path", ["../secret.md", "run-a/../../secret.md", "run-a/audit.log", "secret.md",
                                  "run-a/notifications.jsonl", "run-a/x/y/scorecard.json", "run-z/scorecard.en.md",
                                  "%2e%2e/secret.md", "run-a//scorecard.en.md"])
def test_file_links_reach_only_report_files(client, path):
    login(client, "duty_officer")
    res = client.get(f"/drills/files/{path}")
    assert res.status_code in (403, 404) and "not a report" not in res.text


def test_a_missing_report_is_named_in_the_pages_language(client):
    login(client, "duty_officer")
    res = client.get("/drills/view/run-z/scorecard.en.md")
    assert res.status_code == 404 and "演练报告 run-z/scorecard.en.md 不存在" in res.text
    res = client.get("/drills/view/run-z/scorecard.en.md?lang=en")
    assert res.status_code == 404 and "Drill report run-z/scorecard.en.md does not exist" in res.text


def test_drills_are_refused_to_whom_the_policy_refuses(client):
    login(client, "logistics_staff")  # a team member, not a head, leadership or the duty officer
    for path in ("/drills", "/drills/view/run-a/incident_report.zh-CN.md", "/drills/files/run-a/scorecard.json"):
        res = client.get(path)
        assert res.status_code == 403 and "未做任何更改" in res.text, path
        assert "演练结果由领导小组、各组负责人或值班员查看" in res.text, path  # the rule, in the page's language
    assert 'href="/drills"' not in client.get("/").text
    client.cookies.clear()
    assert client.get("/drills", follow_redirects=False).status_code == 303  # signed out: to the login page


@pytest.mark.parametrize(("person", "allowed"), [("president", True), ("medical_affairs", True),
                                                 ("admin_director", True), ("duty_officer", True),
                                                 ("logistics_staff", False), ("oncall_admin", False),
                                                 ("info_staff", False)])
def test_who_may_see_drill_results(roster, person, allowed):
    from crisis.engine import policy
    from crisis.principal import for_person

    decision = policy.may_view_drills(for_person(roster, person))
    assert decision.allowed is allowed and decision.rule == "drills"
