"""Reports as PDF (issue 10 item 6): one page per section, the hospital's name in every page header,
Chinese set in an embedded CJK font. Checked with poppler's pdftotext/pdffonts, as a reader would see it."""

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


def test_pdf_has_a_page_per_section_with_the_hospital_in_the_header(svc, incident, tmp_path: Path):  # noqa: F811
    ctx = reports.report_context(svc, incident, tz="Asia/Shanghai")
    written = reports.write_context(ctx, tmp_path, kinds=("incident_report", "after_action"), formats=("md", "pdf"))
    names = sorted(p.name for p in written)
    assert {"incident_report.zh-CN.pdf", "incident_report.en.pdf", "after_action.zh-CN.pdf",
            "after_action.en.pdf", "incident_report.zh-CN.md"} <= set(names)

    md = (tmp_path / "incident_report.zh-CN.md").read_text("utf-8")
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    pages = page_texts(tmp_path / "incident_report.zh-CN.pdf")
    assert len(pages) == 1 + len(sections)  # the summary, then each section on its own page
    assert "舆情专报" in pages[0] and "网传|测试 事件" in pages[0]
    for page, heading in zip(pages[1:], sections, strict=True):
        assert heading in page  # each page opens its own section
    for n, page in enumerate(pages, start=1):
        head = page.strip().splitlines()[0]
        assert "示例市第一人民医院" in head and "舆情专报 · 第 1 号事件" in head  # running header
        assert "Example City" not in page  # the Chinese report names the hospital in Chinese
        assert re.search(rf"\b{n}\s*/\s*{len(pages)}\b", page)  # footer: page n / N
    assert "研判事件等级与范围，决定是否启动预案" in "".join(pages)

    fonts = subprocess.run(["pdffonts", str(tmp_path / "incident_report.zh-CN.pdf")], check=True,
                           capture_output=True, text=True).stdout
    assert re.search(r"CJK|SC|Hei|Han", fonts) and " yes " in fonts  # a Chinese font, embedded

    en = page_texts(tmp_path / "after_action.en.pdf")
    assert "Example City No.1 People's Hospital" in en[0].splitlines()[0]
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
