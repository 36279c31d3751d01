"""The incident page's statement draft form and its report preview/downloads, through the real app: drafting goes
through the service with the person's principal, CSRF and the page's version; the writing rules' warnings show
in the page's language; the report is the one `crisis report` renders, escaped, in both languages."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from web_support import login, make_app, open_incident

from crisis import reports
from crisis.principal import Principal

DO = Principal(person="duty_officer", auth="cli")
LEAD = Principal(person="president", auth="cli")
PHONE = "13812345678"


@pytest.fixture()
def client(svc):
    with TestClient(make_app(svc), raise_server_exceptions=True) as c:
        yield c


def _draft(client, csrf, inc_id, version, **form):
    data = {"csrf_token": csrf, "version": version, "title": "关于网传情况的说明", "body": "我院高度重视。", **form}
    return client.post(f"/incidents/{inc_id}/statements", data=data, follow_redirects=False)


def test_draft_form_drafts_through_the_service_and_shows_warnings(client, svc):
    inc = open_incident(svc)
    csrf = login(client, "duty_officer")
    page = client.get(f"/incidents/{inc.id}").text
    assert f'action="/incidents/{inc.id}/statements"' in page and 'name="version"' in page
    long_title = "关于网传我院急诊科护士与患者家属发生冲突一事的情况说明<i>"
    res = _draft(client, csrf, inc.id, svc.incident(inc.id).version, title=long_title,
                 body=f"家属电话 {PHONE}，<script>alert(1)</script> yyds", major="no")
    assert res.status_code == 303
    (st,) = svc.statements(inc.id)
    assert st.drafted_by == "duty_officer" and st.status == "in_review" and st.major is False
    assert res.headers["location"] == f"/incidents/{inc.id}?drafted={st.id}#statement-{st.id}"
    shown = client.get(res.headers["location"]).text
    assert "声明已起草" in shown and 'class="statement fresh"' in shown
    assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "&lt;i&gt;" in shown and "<i>" not in shown.split('id="statement-')[1]
    warnings = re.findall(r'<ul class="warnings".*?</ul>', shown, re.S)[0]
    assert "标题 30 字（一般不超过 20 字）" in warnings
    assert "含个人信息：手机号（发布前请删除或打码）" in warnings and PHONE not in warnings
    assert "网络用语：yyds" in warnings and "未说明下次通报时间" in warnings
    en = client.get(f"/incidents/{inc.id}?lang=en").text
    assert "personal data: mobile phone number (remove or mask before release)" in en


def test_draft_refusals_change_nothing(client, svc):
    inc = open_incident(svc)
    csrf = login(client, "duty_officer")
    version = svc.incident(inc.id).version
    no_csrf = client.post(f"/incidents/{inc.id}/statements",
                          data={"version": version, "title": "说明", "body": "正文"})
    assert no_csrf.status_code == 403
    svc.update_signals(inc.id, {"reposts": 99}, principal=DO)  # someone else acts: the page is stale
    stale = _draft(client, csrf, inc.id, version)
    assert stale.status_code == 409 and "他人已修改此事件" in stale.text and "未做任何更改" in stale.text
    assert 'href="/incidents/' in stale.text  # the way back to reload
    too_long = _draft(client, csrf, inc.id, svc.incident(inc.id).version, title="标" * 201)
    assert too_long.status_code == 422
    assert svc.statements(inc.id) == []


def test_closed_incident_offers_no_draft_and_refuses_one(client, svc):
    inc = open_incident(svc)
    svc.fire(inc.id, "report", principal=LEAD, override=True, reason="drill")
    svc.fire(inc.id, "assess", principal=LEAD, decision="dismiss", override=True, reason="不予启动")
    assert svc.incident(inc.id).stage == "dismissed"
    csrf = login(client, "duty_officer")
    assert "/statements" not in client.get(f"/incidents/{inc.id}").text  # the policy refuses: no form
    res = _draft(client, csrf, inc.id, svc.incident(inc.id).version)
    assert res.status_code == 409 and svc.statements(inc.id) == []


def test_report_preview_in_both_languages_is_the_cli_report_escaped(client, svc):
    inc = open_incident(svc)  # its title carries <b>…</b>
    login(client, "logistics_staff")  # every signed-in team member may read the report
    page = client.get(f"/incidents/{inc.id}").text
    for lang in ("zh-CN", "en"):
        assert f'hx-get="/incidents/{inc.id}/report?rlang={lang}"' in page
        for fmt in ("md", "pdf"):
            assert f'href="/incidents/{inc.id}/report/incident_report.{lang}.{fmt}"' in page
    zh = client.get(f"/incidents/{inc.id}/report?rlang=zh-CN", headers={"HX-Request": "true"})
    assert zh.status_code == 200 and "<html" not in zh.text and "<h1>舆情专报</h1>" in zh.text
    assert "<b>护士</b>" not in zh.text and "&lt;b&gt;护士&lt;/b&gt;" in zh.text
    assert "<table>" in zh.text and "medical_dispute" not in zh.text
    en = client.get(f"/incidents/{inc.id}/report?rlang=en", headers={"HX-Request": "true"}).text
    assert "Incident report" in en and "舆情专报" not in en
    full = client.get(f"/incidents/{inc.id}/report?rlang=en&kind=after_action").text
    assert full.startswith("<!doctype html>") and "After-action review" in full


def test_report_downloads_md_and_pdf(client, svc):
    inc = open_incident(svc)
    login(client, "duty_officer")
    md = client.get(f"/incidents/{inc.id}/report/incident_report.zh-CN.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert f'filename="incident-{inc.id}-incident_report.zh-CN.md"' in md.headers["content-disposition"]
    ctx = reports.report_context(svc, inc.id, tz="Asia/Shanghai")
    assert md.text == reports.render("incident_report", ctx, "zh-CN")  # the CLI's report, byte for byte
    pdf = client.get(f"/incidents/{inc.id}/report/after_action.en.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    for bad in ("scorecard.zh-CN.md", "incident_report.fr.md", "incident_report.zh-CN.html"):
        assert client.get(f"/incidents/{inc.id}/report/{bad}").status_code == 422, bad
    assert client.get("/incidents/999/report/incident_report.en.md").status_code == 404
    assert client.get("/incidents/999/report?rlang=en").status_code == 404
    client.cookies.clear()  # signed out: a preview slot gets a bare 401, a page the way to sign in
    assert client.get(f"/incidents/{inc.id}/report", headers={"HX-Request": "true"}).status_code == 401
    assert client.get(f"/incidents/{inc.id}/report", follow_redirects=False).status_code == 303


# --------------------------------------------------------------------------- release over personal data
def _approved_with_phone(svc):
    """A statement with a mobile number through all three review levels (drafted by the duty officer)."""
    inc = open_incident(svc)
    st = svc.draft_statement(inc.id, title="情况通报", body=f"家属电话 {PHONE}，后续进展将及时通报。", principal=DO,
                             major=True)
    roster = svc.roster
    for pid in (roster.roles["info_staff"], roster.roles["info_dept_head"], roster.leadership_head()):
        st = svc.review_statement(st.id, principal=Principal(person=pid, auth="cli"), approve=True)
    assert st.status == "approved"
    return inc, st


def _release(client, csrf, inc_id, st_id, version, **form):
    data = {"csrf_token": csrf, "incident": inc_id, "version": version, **form}
    return client.post(f"/statements/{st_id}/release", data=data, follow_redirects=False)


def test_release_override_is_offered_to_leadership_only_and_needs_a_reason(client, svc):
    inc, st = _approved_with_phone(svc)
    csrf = login(client, "duty_officer")  # drafted it, but is not leadership
    page = client.get(f"/incidents/{inc.id}").text
    assert f'action="/statements/{st.id}/release"' not in page
    version = svc.incident(inc.id).version
    refused = _release(client, csrf, inc.id, st.id, version, override="yes", reason="家属同意")
    assert refused.status_code == 403 and svc.statements(inc.id)[0].status == "approved"
    assert "<h1>无权操作</h1>" in refused.text  # the page's language headline for a 403

    lead = svc.roster.leadership_head()
    csrf = login(client, lead)
    page = client.get(f"/incidents/{inc.id}").text
    form = re.findall(r'<form[^>]*release-override.*?</form>', page, re.S)[0]
    assert 'name="override" value="yes"' in form and 'name="reason" required' in form
    assert f'name="version" value="{version}"' in form and f'value="{csrf}"' in form
    no_reason = _release(client, csrf, inc.id, st.id, version, override="yes", reason=" ")
    assert no_reason.status_code == 422 and svc.statements(inc.id)[0].status == "approved"
    assert "<h1>请检查填写的内容</h1>" in no_reason.text and "理由：须填写理由" in no_reason.text
    no_override = _release(client, csrf, inc.id, st.id, version)
    assert no_override.status_code == 409 and svc.statements(inc.id)[0].status == "approved"
    no_csrf = client.post(f"/statements/{st.id}/release", data={"incident": inc.id, "version": version,
                                                                 "override": "yes", "reason": "x"})
    assert no_csrf.status_code == 403 and svc.statements(inc.id)[0].status == "approved"

    reason = "家属书面同意<script>alert(1)</script>"
    done = _release(client, csrf, inc.id, st.id, version, override="yes", reason=reason)
    assert done.status_code == 303 and svc.statements(inc.id)[0].status == "released"
    (ov,) = [e for e in svc.timeline(inc.id) if e.kind == "statement_release_override"]
    assert ov.actor == lead and ov.data["reason"] == reason
    shown = client.get(f"/incidents/{inc.id}").text
    assert "<script>alert(1)</script>" not in shown


def test_release_from_a_stale_page_is_a_conflict_page(client, svc):
    inc, st = _approved_with_phone(svc)
    csrf = login(client, svc.roster.leadership_head())
    version = svc.incident(inc.id).version
    svc.update_signals(inc.id, {"reposts": 99}, principal=DO)  # someone else acts: the page is stale
    assert svc.incident(inc.id).version != version
    stale = _release(client, csrf, inc.id, st.id, version, override="yes", reason="家属同意")
    assert stale.status_code == 409 and "他人已修改此事件" in stale.text
    assert svc.statements(inc.id)[0].status == "approved"
