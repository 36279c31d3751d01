"""User text is data: cleaned and bounded on the way in, escaped on the way out (console, Markdown)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from helpers import PLAYBOOKS_DIR, by, crisis_env, leader, open_incident
from typer.testing import CliRunner

from crisis import cli, reports, textinput
from crisis.cli import common
from crisis.errors import InputError
from crisis.escaping import md_inline

HOSTILE_TITLE = "网传[/]死亡 [bold red]假[/bold red] \x1b[2J\x1b[31m红\x1b[0m\n# 注入标题\r\n\u202e反转"


# --------------------------------------------------------------------------- cleaning (pure)
def test_one_line_fields_lose_breaks_controls_and_escape_sequences():
    assert textinput.one_line(HOSTILE_TITLE, "title") == "网传[/]死亡 [bold red]假[/bold red] 红 # 注入标题 反转"
    assert textinput.one_line("  a \t\x00b\x7f\x9b31m \u2028 c ", "title") == "a b c"


def test_multi_line_fields_keep_line_breaks_only():
    assert textinput.block("第一段\r\n\x1b[1m第二段\x1b[0m\u2029第三段\x07", "body") == "第一段\n第二段\n第三段"


@pytest.mark.parametrize(("call", "field", "message"), [
    (lambda: textinput.one_line("x" * 201, "title"), "title", "201 characters long; at most 200"),
    (lambda: textinput.one_line(" \n\x1b[0m ", "title"), "title", "must not be empty"),
    (lambda: textinput.one_line(42, "title"), "title", "must be text"),
    (lambda: textinput.optional_line("r" * 1001, "reason", max_len=textinput.REASON_MAX), "reason", "at most 1000"),
    (lambda: textinput.signals({"reposts": math.inf}), "signals.reposts", "finite"),
    (lambda: textinput.signals({"reposts": math.nan}), "signals.reposts", "finite"),
    (lambda: textinput.signals({"reposts": -1}), "signals.reposts", "negative"),
    (lambda: textinput.signals({"reposts": True}), "signals.reposts", "must be a number"),
    (lambda: textinput.signals({"reposts": 1e300}), "signals.reposts", "larger than"),
    (lambda: textinput.signals({"x" * 65: 1}), "signals", "at most 64"),
    (lambda: textinput.signals({f"s{i}": 1 for i in range(51)}), "signals", "at most 50"),
])
def test_bad_text_is_an_input_error_naming_the_field(call, field, message):
    with pytest.raises(InputError) as exc:
        call()
    assert exc.value.field == field and message in exc.value.message


# --------------------------------------------------------------------------- the service stores clean text
def test_service_cleans_and_bounds_what_it_stores(svc, roster):
    iid = open_incident(svc, title=HOSTILE_TITLE, signals={"转发\n数": 3})
    inc = svc.incident(iid)
    assert "\n" not in inc.title and "\x1b" not in inc.title and "\u202e" not in inc.title
    assert inc.signals == {"转发 数": 3}
    boss = by(leader(roster))
    for call, field in [
        (lambda: svc.open_incident(title="t" * 201, category="medical_dispute", principal=boss), "title"),
        (lambda: svc.update_signals(iid, {"views": math.inf}, principal=boss), "signals.views"),
        (lambda: svc.fire(iid, "report", principal=boss, override=True, reason="r" * 1001), "reason"),
        (lambda: svc.fire(iid, "report", principal=boss, override=True, reason=" \x1b[0m\n "), "reason"),
        (lambda: svc.fire(iid, "report", principal=boss, note="n" * 2001), "note"),
        (lambda: svc.complete_task(svc.tasks(iid)[0].id, principal=boss, note="n" * 2001), "note"),
        (lambda: svc.regrade(iid, severity="I", reason="r" * 1001, principal=boss), "reason"),
        (lambda: svc.draft_statement(iid, title="t" * 201, body="b", principal=boss), "title"),
        (lambda: svc.draft_statement(iid, title="t", body="b" * 20001, principal=boss), "body"),
    ]:
        with pytest.raises(InputError) as exc:
            call()
        assert exc.value.field == field
    assert len(svc.incidents()) == 1 and svc.incident(iid).stage == "monitoring"  # nothing changed
    assert all(t.status == "open" for t in svc.tasks(iid)) and svc.statements(iid) == []


# --------------------------------------------------------------------------- Markdown
@pytest.mark.parametrize(("text", "expected"), [
    ("# 标题", "\\# 标题"),
    ("第一行\n\n## 第二行", "第一行 ## 第二行"),
    ("[点此](javascript:alert(1))", "\\[点此\\](javascript:alert(1))"),
    ("<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)>"),
    ("a | b", "a \\| b"),
    ("- 列表", "\\- 列表"),
    ("1. 列表", "1\\. 列表"),
    ("**粗体** `代码` ~~删~~ _斜_", "\\*\\*粗体\\*\\* \\`代码\\` \\~\\~删\\~\\~ \\_斜\\_"),
    ("&lt;script&gt;", "\\&lt;script\\&gt;"),
    # ordinary text stays readable
    ("2026-03-14 13:00", "2026-03-14 13:00"),
    ("compile_report", "compile_report"),
    ("舆情#3 A&B 1.5", "舆情#3 A&B 1.5"),
    ("-", "-"),
])
def test_markdown_escaping(text, expected):
    assert md_inline(text) == expected


def test_reports_escape_every_printed_value(svc, roster):
    iid = open_incident(svc, title="网传死亡\n\n## 伪造章节\n| 假 | 表 |", source_url="https://x.example/a|b")
    boss = by(leader(roster))
    svc.fire(iid, "report", principal=boss, override=True, reason="[点此](http://evil.example) <b>急</b>",
             note="- 假列表\n# 假标题")
    ctx = reports.report_context(svc, iid, tz="Asia/Shanghai")
    for kind in ("incident_report", "after_action"):
        for lang in reports.LANGS:
            text = reports.render(kind, ctx, lang)
            lines = text.splitlines()
            assert not any(line.startswith(("## 伪造章节", "# 假标题", "- 假列表", "| 假 |")) for line in lines)
            assert "](http://evil.example)" not in text.replace("\\](http://evil.example)", "")
            assert "<b>" not in text.replace("\\<b>", "")
            assert "网传死亡 ## 伪造章节 \\| 假 \\| 表 \\|" in text


# --------------------------------------------------------------------------- console (Rich)
@pytest.fixture()
def crisis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_db: Path):
    shutil.copyfile(migrated_db, tmp_path / "crisis.db")  # `crisis db init`
    for name, value in crisis_env(tmp_path, PLAYBOOKS_DIR).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CRISIS_USER", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        common._state.clear()
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_markup_in_user_text_does_not_break_list_or_show(crisis):
    title = "网传[/]死亡[bold]假"
    opened = json.loads(crisis("open", "--title", title, "--category", "medical_dispute",
                               "--signal", "[red]x=1", "--json").stdout)
    iid = str(opened["incident"]["id"])
    crisis("fire", iid, "report", "--override", "--reason", "[/] 董事会[link=http://x]指示", "--by", "president")
    crisis("regrade", iid, "--severity", "I", "--reason", "[/bold] 升级", "--by", "president")
    listed = crisis("list").stdout
    assert title in listed
    shown = crisis("show", iid).stdout
    assert title in shown and "[red]x" in shown and "[/] 董事会[link=http://x]指示" in shown


def test_an_error_naming_user_text_is_one_clean_line(crisis):
    err = crisis("open", "--title", "t", "--category", "medical_dispute", "--by", "[/]ghost[bold]", code=2)
    assert "unknown person '[/]ghost[bold]'" in err.output and "Traceback" not in err.output
