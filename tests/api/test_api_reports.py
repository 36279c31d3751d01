"""Reports through the API: JSON with the CLI's keys, and the PDF (issue 10 items 4 and 6)."""

from __future__ import annotations

from apihelpers import API, sign_in

from crisis import reports


def test_report_json_has_the_document_keys_and_pdf_is_a_pdf(client):
    sign_in(client, "president")
    res = client.post(f"{API}/incidents", json={"title": "网传我院候诊5小时", "category": "medical_dispute"})
    iid = res.json()["incident"]["id"]
    data = client.get(f"{API}/incidents/{iid}/report", params={"format": "json"}).json()
    assert list(data) == list(reports.DOCUMENT_KEYS)
    pdf = client.get(f"{API}/incidents/{iid}/report", params={"format": "pdf", "kind": "after_action"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and len(pdf.content) > 1000
