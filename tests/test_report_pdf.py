"""Reports as PDF (issue 10 item 6): sections flowing one after another (a young incident's report is one
page), no heading left alone at the bottom of a page, the hospital's name in every page header, Chinese set
in an embedded CJK font. Checked with poppler's pdftotext/pdffonts, as a reader would see it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_reports import incident  # noqa: F401 - the fixture: a grade II dispute left to escalate

from crisis import reports

pytestmark = pytest.mark.skipif(not shutil.which("pdftotext") or not shutil.which("pdffonts"),
                                reason="poppler-utils not installed (.ci/run installs it)")


def page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    return text.split("\f")[:-1]  # pdftotext ends every page with a form feed


def body_lines(page: str) -> list[str]:
    """A page's text lines without the running header (first) and the page number (last)."""
    lines = [ln.strip() for ln in page.splitlines() if ln.strip()]
    return lines[1:-1]


def test_pdf_sections_flow_with_the_hospital_in_the_header(svc, incident, tmp_path: Path):  # noqa: F811
    ctx = reports.report_context(svc, incident, tz="Asia/Shanghai")
    written = reports.write_context(ctx, tmp_path, kinds=("incident_report", "after_action"), formats=("md", "pdf"))
    names = sorted(p.name for p in written)
    assert {"incident_report.zh-CN.pdf", "incident_report.en.pdf", "after_action.zh-CN.pdf",
            "after_action.en.pdf", "incident_report.zh-CN.md"} <= set(names)

    md = (tmp_path / "incident_report.zh-CN.md").read_text("utf-8")
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    pages = page_texts(tmp_path / "incident_report.zh-CN.pdf")
    assert len(sections) == 6 and len(pages) <= 2  # six sections flow on, not a page each
    assert "舆情专报" in pages[0] and "网传|测试 事件" in pages[0] and sections[0] in pages[0]
    text = "\n".join(pages)
    assert [text.index(h) for h in sections] == sorted(text.index(h) for h in sections)  # in order
    for n, page in enumerate(pages, start=1):
        head = page.strip().splitlines()[0]
        assert "示例市第一人民医院" in head and "舆情专报 · 第 1 号事件" in head  # running header
        assert "Example City" not in page  # the Chinese report names the hospital in Chinese
        assert re.search(rf"\b{n}\s*/\s*{len(pages)}\b", page)  # footer: page n / N
        assert body_lines(page)[-1] not in sections  # no heading alone at the bottom of a page
    assert "研判事件等级与范围，决定是否启动预案" in "".join(pages)

    fonts = subprocess.run(["pdffonts", str(tmp_path / "incident_report.zh-CN.pdf")], check=True,
                           capture_output=True, text=True).stdout
    assert re.search(r"CJK|SC|Hei|Han", fonts) and " yes " in fonts  # a Chinese font, embedded

    en = page_texts(tmp_path / "after_action.en.pdf")
    assert len(en) <= 3 and "Example City No.1 People's Hospital" in en[0].splitlines()[0]
    assert any("6. Improvement plan" in p and "Corrective action" in p for p in en)


def test_cli_writes_pdfs_with_out_and_refuses_without(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from helpers import crisis_env
    from typer.testing import CliRunner

    from crisis import cli
    from crisis.cli import common

    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        common._state.clear()
        res = runner.invoke(cli.app, list(args))
        assert res.exit_code == code, res.output
        return res.output

    invoke("open", "--title", "网传候诊5小时", "--category", "medical_dispute")
    assert "add --out DIR" in invoke("report", "1", "--format", "pdf", code=2)
    assert "unknown format 'docx'" in invoke("report", "1", "--format", "docx", "--out", str(tmp_path / "x"),
                                             code=2)
    assert not (tmp_path / "x").exists()
    out = invoke("report", "1", "--format", "pdf", "--out", str(tmp_path / "r"))
    assert "incident_report.zh-CN.pdf" in out and (tmp_path / "r" / "after_action.en.pdf").stat().st_size > 1000
    assert (tmp_path / "r" / "incident_report.zh-CN.md").exists()  # Markdown as well
    assert len(page_texts(tmp_path / "r" / "incident_report.zh-CN.pdf")) == 1  # a young incident: one page
    assert len(page_texts(tmp_path / "r" / "after_action.zh-CN.pdf")) <= 2  # one today; leave room for text


def test_drill_run_writes_pdfs_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from helpers import DRILLS_DIR, crisis_env
    from typer.testing import CliRunner

    from crisis import cli
    from crisis.cli import common

    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    common._state.clear()
    res = CliRunner().invoke(cli.app, ["drill", "run", str(DRILLS_DIR / "nobody-acts.yaml"), "--format", "pdf",
                                       "--out", str(tmp_path / "d"), "--db", f"sqlite:///{tmp_path / 'd.db'}"])
    assert res.exit_code == 0, res.output
    pdfs = sorted(p.name for p in (tmp_path / "d").glob("*.pdf"))
    assert pdfs == sorted(f"{k}.{lang}.pdf" for k in ("incident_report", "after_action", "scorecard")
                          for lang in ("zh-CN", "en"))
    pages = page_texts(tmp_path / "d" / "scorecard.zh-CN.pdf")
    assert "演练评分卡 · 第 1 号事件 · 演练" in pages[0].splitlines()[0]
    for pdf in (tmp_path / "d").glob("*.pdf"):  # longer reports: a heading always has its content below it
        headings = re.findall(r"^#+ (.+)$", pdf.with_suffix(".md").read_text("utf-8"), flags=re.M)
        for page in page_texts(pdf):
            assert body_lines(page)[-1] not in headings, (pdf.name, page)


def test_a_group_name_never_ends_a_page_without_its_table(tmp_path: Path):
    """Bold group names above their task tables (the incident report's handling section), in a document long
    enough that some would fall at a page bottom: each goes to the next page with its table."""
    from crisis.report_pdf import render_pdf

    parts = ["# 舆情专报"]
    for i in range(24):
        parts.append(f"**第{i}组**")
        parts.append("| 任务 | 负责人 |\n|---|---|\n" + "\n".join(f"| 任务{j} | 某人 |" for j in range(i % 4 + 1)))
    pdf = tmp_path / "groups.pdf"
    pdf.write_bytes(render_pdf("\n\n".join(parts), kind="incident_report", ctx={"incident": {"id": 1}},
                               lang="zh-CN"))
    pages = page_texts(pdf)
    assert len(pages) >= 3
    for page in pages:
        assert not re.fullmatch(r"第\d+组", body_lines(page)[-1]), page
