"""Console tables read whole when piped to a file or printed at 80 columns (issue 10 item 5).

Each table output is parsed back: for every column the text of its cells is joined top to bottom
(a folded value continues on the next line of the same column), so a value printed whole, however
folded, is found again, while a value cut into "monitor…" is not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import PLAYBOOKS_DIR, crisis_env
from rich.cells import cell_len
from typer.testing import CliRunner

from crisis import cli
from crisis.cli import common
from crisis.principal import Principal as P

TITLE = "网传我院急诊科医生态度恶劣并拒绝接诊，患者家属在微博发长文控诉"
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)


def local(dt: datetime) -> str:
    return dt.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d %H:%M")


@pytest.fixture(params=["80", None], ids=["80-columns", "piped"])
def crisis(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An incident opened three hours ago, reported, and left to escalate; then `crisis tick`."""
    pb = tmp_path / "playbooks"
    pb.mkdir()
    (pb / "medical_dispute.yaml").write_text((PLAYBOOKS_DIR / "medical_dispute.yaml").read_text("utf-8"), "utf-8")
    for name, value in crisis_env(tmp_path, pb).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CRISIS_USER", raising=False)
    monkeypatch.delenv("CRISIS_TZ", raising=False)
    if request.param:
        monkeypatch.setenv("COLUMNS", request.param)
    else:
        monkeypatch.delenv("COLUMNS", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        common._state.clear()
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == 0, result.output
        assert "…" not in result.stdout  # nothing cut off
        width = int(request.param or 160)
        assert max(cell_len(line) for line in result.stdout.splitlines()) <= width
        return result.stdout

    common._state.clear()
    assert runner.invoke(cli.app, ["db", "init"]).exit_code == 0  # creates the schema through the CLI
    svc = common.service()
    inc = svc.open_incident(title=TITLE, category="medical_dispute", principal=P("duty_officer"), severity="II",
                            signals={"reposts": 120}, now=T0)
    svc.complete_task(svc.find_task(inc.id, "compile_report").id, principal=P("publicity_head"),
                      now=T0 + timedelta(minutes=25))
    svc.fire(inc.id, "report", principal=P("duty_officer"), now=T0 + timedelta(minutes=26))
    invoke("tick")
    return invoke


def columns(output: str, *headers: str) -> dict[str, str]:
    """The table whose header holds `headers`: each column's cells joined, whitespace removed.
    Header cells may fold over several lines too ("next" / "deadline")."""
    lines = output.splitlines()
    for top in (i for i, line in enumerate(lines) if line.lstrip().startswith("┏")):
        rule = next(i for i in range(top, len(lines)) if lines[i].lstrip().startswith("┡"))
        split = [line.strip().strip("┃").split("┃") for line in lines[top + 1:rule]]
        names = [" ".join(" ".join(h[k].split()) for h in split if h[k].strip()) for k in range(len(split[0]))]
        if all(h in names for h in headers):
            break
    else:
        raise AssertionError(f"no table with {headers} in:\n{output}")
    cols: dict[str, list[str]] = {n: [] for n in names}
    for line in lines[rule + 1:]:
        if line.lstrip().startswith("└"):
            break
        for n, cell in zip(names, line.strip().strip("│").split("│"), strict=True):
            cols[n].append(cell)
    return {n: re.sub(r"\s+", "", "".join(parts)) for n, parts in cols.items()}


def has(col: str, value: str) -> bool:
    return re.sub(r"\s+", "", value) in col


def test_list_shows_whole_titles_stages_and_deadlines(crisis):
    c = columns(crisis("list"), "title", "stage")
    assert has(c["title"], TITLE) and has(c["stage"], "reported") and has(c["category"], "medical_dispute")
    assert has(c["next deadline"], "overdue") and has(c["opened"], local(T0))


def test_task_list_has_assignee_group_and_local_due_times(crisis):
    c = columns(crisis("task", "list", "1"), "task", "assignee")
    assert has(c["title"], "研判事件等级与范围，决定是否启动预案") and has(c["title"], "向当事科室核实诊疗经过")
    assert has(c["assignee"], "王院长") and has(c["assignee"], "吴主任") and has(c["assignee"], "张部长")
    assert has(c["group"], "应急响应与处置组") and has(c["group"], "监测与分析组")
    assert has(c["due"], local(T0 + timedelta(minutes=86))) and has(c["status"], "overdue")  # report + 1 h, local
    assert has(c["stage"], "monitoring") and has(c["stage"], "reported")


def test_show_timeline_uses_local_times_names_and_titles(crisis):
    out = crisis("show", "1")
    assert TITLE in out.replace("\n", "") or has(re.sub(r"\s+", "", out), TITLE)
    tl = columns(out, "when", "who", "detail")
    assert has(tl["when"], local(T0)) and has(tl["when"], local(T0 + timedelta(minutes=26)))
    assert has(tl["who"], "林值班") and has(tl["who"], "张部长") and has(tl["who"], "系统")
    assert has(tl["detail"], "「汇总基本事实、舆情走势与可能影响并报告领导小组」")
    assert has(tl["detail"], "「研判事件等级与范围，决定是否启动预案」第1级提醒→王院长")
    assert "compile_report" not in tl["detail"] and "system" not in tl["who"]
    esc = columns(out, "esc", "recipient", "late")
    assert has(esc["task"], "研判事件等级与范围") and has(esc["recipient"], "王院长")


def test_escalations_table_names_the_task_and_recipient(crisis):
    c = columns(crisis("escalations", "--pending"), "esc", "incident", "recipient")
    assert has(c["task"], "研判事件等级与范围，决定是否启动预案") and has(c["task"], "向当事科室核实诊疗经过")
    assert has(c["recipient"], "王院长") and has(c["recipient"], "吴主任")
    assert has(c["fired"], local(datetime.now(UTC))[:5])  # fired today, shown in the hospital's zone


def test_playbook_show_prints_keys_and_stages_whole(crisis):
    c = columns(crisis("playbook", "show", "medical_dispute", "--severity", "I"), "stage", "key", "from")
    for key in ("report_health_authority", "after_action_review", "preserve_evidence"):
        assert has(c["key"], key)
    assert has(c["stage"], "media_liaison") and has(c["stage"], "follow_up")
    assert has(c["title"], "按规定向卫生健康行政部门报告") and has(c["group"], "leadership")
