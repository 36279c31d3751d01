"""Public statements: three-level release review (two for minor ones), rejection, release, lint."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import by, drive_to, open_incident

from crisis import labels
from crisis.engine.policy import reviewer_level_ok
from crisis.errors import Conflict, CrisisError, Forbidden, InputError, NotFound
from crisis.principal import for_person
from crisis.statements import LEVELS, Finding, lint_statement, personal_data, required_levels

BODY = "我院高度重视，已成立调查组，后续进展将及时通报。"


def reviewer_qualifies(roster, person: str, level: int) -> bool:
    return reviewer_level_ok(for_person(roster, person), level)


@pytest.fixture()
def people(roster):
    """The three review levels of the example roster, plus people who qualify for none of them."""
    return {
        "l1": roster.roles["info_staff"],
        "l2": roster.roles["info_dept_head"],
        "l3": roster.leadership_head(),
        "spokesperson": roster.roles["spokesperson"],
        "outsider": roster.groups["logistics"].members[-1],
    }


def draft(svc, iid, people, **kw):
    kw.setdefault("title", "情况通报")
    kw.setdefault("body", BODY)
    st = svc.draft_statement(iid, principal=by(people["spokesperson"]), **kw)
    assert st.id is not None
    return st


def test_roster_levels_as_expected(roster, people):
    assert reviewer_qualifies(roster, people["l1"], 1)
    assert reviewer_qualifies(roster, people["l2"], 2)
    assert reviewer_qualifies(roster, people["l3"], 3)
    assert not reviewer_qualifies(roster, people["outsider"], 1)
    assert not reviewer_qualifies(roster, people["l1"], 2)
    assert not reviewer_qualifies(roster, roster.leadership_head(), 2)  # the head approves at level 3
    assert reviewer_qualifies(roster, roster.groups["leadership"].deputies[0], 2)
    assert not reviewer_qualifies(roster, people["l1"], 3)
    assert not reviewer_qualifies(roster, people["l3"], 4)
    assert required_levels(True) == LEVELS and required_levels(False) == LEVELS[:2]


def test_major_statement_three_levels_then_release(svc, clock, people):
    iid = open_incident(svc, severity="II")
    st = draft(svc, iid, people, next_update="24h")
    assert (st.status, st.major, st.reviews, st.drafted_by) == ("in_review", True, [], people["spokesperson"])
    for level, who in enumerate(("l1", "l2", "l3"), start=1):
        clock.advance(timedelta(minutes=10))
        st = svc.review_statement(st.id, principal=by(people[who]), approve=True, comment=f"ok {level}")
        assert len(st.reviews) == level
        assert st.reviews[-1] == {"level": level, "by": people[who], "approve": True,
                                  "at": clock.now().isoformat(), "comment": f"ok {level}"}
        assert st.status == ("approved" if level == 3 else "in_review")
    clock.advance(timedelta(minutes=1))
    st = svc.release_statement(st.id, principal=by(people["spokesperson"]))
    assert (st.status, st.released_at, st.released_by) == ("released", clock.now(), people["spokesperson"])
    (stored,) = svc.statements(iid)
    assert stored.status == "released" and stored.released_at == clock.now()
    kinds = [e.kind for e in svc.timeline(iid) if e.kind.startswith("statement_")]
    assert kinds == ["statement_drafted"] + ["statement_reviewed"] * 3 + ["statement_released"]
    released = svc.timeline(iid)[-1]
    assert released.data["first"] is True and released.data["next_update"] == "24h"


def test_second_release_is_not_first(svc, people):
    iid = open_incident(svc, severity="III")
    for n in range(2):
        st = draft(svc, iid, people, title=f"通报{n}")
        svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
        svc.review_statement(st.id, principal=by(people["l2"]), approve=True)
        svc.release_statement(st.id, principal=by(people["spokesperson"]))
    firsts = [e.data["first"] for e in svc.timeline(iid) if e.kind == "statement_released"]
    assert firsts == [True, False]


def test_minor_statement_needs_two_levels(svc, people):
    iid = open_incident(svc, severity="III")
    st = draft(svc, iid, people)
    assert st.major is False
    svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    st = svc.review_statement(st.id, principal=by(people["l2"]), approve=True)
    assert st.status == "approved"
    with pytest.raises(CrisisError, match="approved, not in review"):
        svc.review_statement(st.id, principal=by(people["l3"]), approve=True)
    assert svc.release_statement(st.id, principal=by(people["spokesperson"])).status == "released"


def test_major_flag_explicit_overrides_severity(svc, people):
    iid = open_incident(svc, severity="IV")
    st = draft(svc, iid, people, major=True)
    assert st.major is True
    iid = open_incident(svc, severity="I")
    assert draft(svc, iid, people).major is True
    assert draft(svc, iid, people, major=False).major is False


@pytest.mark.parametrize("approved_levels", [0, 1, 2])
def test_release_before_full_review_refused(svc, people, approved_levels):
    iid = open_incident(svc, severity="I")
    st = draft(svc, iid, people)
    for who in ("l1", "l2", "l3")[:approved_levels]:
        svc.review_statement(st.id, principal=by(people[who]), approve=True)
    n_events = len(svc.timeline(iid))
    with pytest.raises(CrisisError, match=f"in_review \\({approved_levels}/3 review levels approved\\)"):
        svc.release_statement(st.id, principal=by(people["spokesperson"]))
    (stored,) = svc.statements(iid)
    assert stored.status == "in_review" and stored.released_at is None and stored.released_by is None
    assert len(svc.timeline(iid)) == n_events


@pytest.mark.parametrize("reject_at", [1, 2, 3])
def test_rejection_at_any_level_stops_the_statement(svc, people, reject_at):
    iid = open_incident(svc, severity="II")
    st = draft(svc, iid, people)
    who = ("l1", "l2", "l3")
    for level in range(1, reject_at):
        svc.review_statement(st.id, principal=by(people[who[level - 1]]), approve=True)
    st = svc.review_statement(st.id, principal=by(people[who[reject_at - 1]]), approve=False, comment="口径不统一")
    assert st.status == "rejected"
    assert st.reviews[-1]["approve"] is False and st.reviews[-1]["comment"] == "口径不统一"
    with pytest.raises(CrisisError, match="rejected"):
        svc.release_statement(st.id, principal=by(people["spokesperson"]))
    with pytest.raises(CrisisError, match="rejected, not in review"):
        svc.review_statement(st.id, principal=by(people["l3"]), approve=True)
    assert svc.statements(iid)[0].status == "rejected"
    # a corrected draft starts over
    again = draft(svc, iid, people, title="情况通报（更正）")
    assert again.status == "in_review" and again.reviews == []


@pytest.mark.parametrize(("level", "who"), [(1, "outsider"), (1, "l3"), (2, "l1"), (2, "l3"), (2, "outsider"),
                                             (3, "l1"), (3, "outsider")])
def test_review_by_wrong_role_refused(svc, people, level, who):
    iid = open_incident(svc, severity="I")
    st = draft(svc, iid, people)
    for reviewer in ("l1", "l2")[: level - 1]:
        svc.review_statement(st.id, principal=by(people[reviewer]), approve=True)
    before = svc.statements(iid)[0].reviews
    n_events = len(svc.timeline(iid))
    with pytest.raises(Forbidden, match=f"level {level}"):
        svc.review_statement(st.id, principal=by(people[who]), approve=True)
    assert svc.statements(iid)[0].reviews == before
    assert len(svc.timeline(iid)) == n_events
    assert len(before) == level - 1 and all(r["level"] == i + 1 for i, r in enumerate(before))


def test_same_person_cannot_review_two_levels(svc, roster, people):
    iid = open_incident(svc, severity="I")
    st = draft(svc, iid, people)
    svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    both = people["l2"]  # the information head is also in leadership, so qualifies at level 3
    assert roster.is_leadership(both)
    svc.review_statement(st.id, principal=by(both), approve=True)
    with pytest.raises(Forbidden, match="already reviewed"):
        svc.review_statement(st.id, principal=by(both), approve=True)
    assert svc.review_statement(st.id, principal=by(people["l3"]), approve=True).status == "approved"


def test_draft_refusals(svc, roster, people):
    iid = open_incident(svc, severity="II")
    with pytest.raises(InputError):
        svc.draft_statement(iid, title="  ", body=BODY, principal=by(people["spokesperson"]))
    with pytest.raises(InputError):
        svc.draft_statement(iid, title="通报", body="", principal=by(people["spokesperson"]))
    with pytest.raises(NotFound):
        svc.draft_statement(9999, title="通报", body=BODY, principal=by(people["spokesperson"]))
    with pytest.raises(Forbidden, match="unknown person"):
        svc.draft_statement(iid, title="通报", body=BODY, principal=by("ghost"))
    assert svc.statements(iid) == []
    with pytest.raises(NotFound):
        svc.review_statement(9999, principal=by(people["l1"]), approve=True)
    with pytest.raises(NotFound):
        svc.release_statement(9999, principal=by(people["l1"]))
    drive_to(svc, iid, "closed")
    with pytest.raises(CrisisError, match="closed"):
        svc.draft_statement(iid, title="通报", body=BODY, principal=by(people["spokesperson"]))
    assert svc.statements(iid) == []


# ------------------------------------------------------------------------- lint
def test_lint_clean_statement():
    assert lint_statement("情况通报", BODY, None) == []
    assert lint_statement("情况通报", "我院已成立调查组。", "24h") == []
    assert lint_statement("Notice", "We will post further updates tonight.", None) == []


def test_lint_findings():
    long_title = "关于我院某科室患者家属在网络平台发帖反映情况的通报说明"
    assert len(long_title) > 20
    w = lint_statement(long_title, "我院已成立调查组。", None)
    assert w == [Finding("title_length", {"n": len(long_title), "limit": 20}), Finding("no_next_update")]
    assert [labels.finding(f.code, f.facts, "en") for f in w] == [
        f"title has {len(long_title)} characters (normally at most 20)", "does not say when the next update will come"]
    assert [labels.finding(f.code, f.facts, "zh-CN") for f in w] == [
        f"标题 {len(long_title)} 字（一般不超过 20 字）", "未说明下次通报时间"]
    assert lint_statement("a" * 20, BODY, None) == []  # 20 is still fine
    w = lint_statement("情况通报", "网友吃瓜，我院YYDS，后续进展将及时通报。", None)
    assert w == [Finding("slang", {"words": ["yyds", "吃瓜"]})]
    assert labels.finding(w[0].code, w[0].facts, "en") == "internet slang: yyds, 吃瓜"
    assert labels.finding(w[0].code, w[0].facts, "zh-CN") == "网络用语：yyds、吃瓜"


def test_lint_warnings_recorded_on_draft(svc, people):
    iid = open_incident(svc, severity="II")
    st = draft(svc, iid, people, title="情况通报", body="我院已关注，绝绝子。")
    (ev,) = [e for e in svc.timeline(iid) if e.kind == "statement_drafted"]
    assert ev.data["statement"] == st.id and ev.data["major"] is True
    assert ev.data["warnings"] == ["internet slang: 绝绝子", "does not say when the next update will come"]
    st2 = draft(svc, iid, people, next_update="明日10时")
    ev2 = [e for e in svc.timeline(iid) if e.kind == "statement_drafted"][-1]
    assert ev2.data["statement"] == st2.id and ev2.data["warnings"] == []


def test_release_refusal_counts_only_approvals(svc, people):
    iid = open_incident(svc, severity="I")
    st = draft(svc, iid, people)
    svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    svc.review_statement(st.id, principal=by(people["l2"]), approve=False)
    with pytest.raises(CrisisError) as err:
        svc.release_statement(st.id, principal=by(people["spokesperson"]))
    assert "(1/3 review levels approved)" in str(err.value)


def test_digit_slang_is_a_number_of_its_own_not_part_of_a_phone_number():
    assert lint_statement("情况通报", "咨询电话 0571-86661234，后续进展将及时通报。", None) == []
    assert lint_statement("情况通报", "处理得666，后续进展将及时通报。", None) == [Finding("slang", {"words": ["666"]})]


# --------------------------------------------------------------------------- four eyes
def test_the_drafter_cannot_approve_their_own_statement_at_any_level(svc, roster, people):
    iid = open_incident(svc, severity="II")
    # level 1: information staff drafting their own
    st = svc.draft_statement(iid, title="情况通报", body=BODY, principal=by(people["l1"]))
    with pytest.raises(Forbidden) as exc:
        svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    assert exc.value.rule == "review.four_eyes"
    # level 2: the information head
    st = svc.draft_statement(iid, title="情况通报", body=BODY, principal=by(people["l2"]))
    svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    with pytest.raises(Forbidden, match="another person must review"):
        svc.review_statement(st.id, principal=by(people["l2"]), approve=True)
    # level 3: the leadership head drafts; another leadership member approves
    st = svc.draft_statement(iid, title="情况通报", body=BODY, principal=by(people["l3"]))
    deputy = roster.groups["leadership"].deputies[0]
    svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    svc.review_statement(st.id, principal=by(deputy), approve=True)
    with pytest.raises(Forbidden):
        svc.review_statement(st.id, principal=by(people["l3"]), approve=False)  # rejecting is reviewing too
    st = svc.review_statement(st.id, principal=by(roster.groups["leadership"].members[0]), approve=True)
    assert st.status == "approved" and people["l3"] not in [r["by"] for r in st.reviews]


# --------------------------------------------------------------------------- personal data
@pytest.mark.parametrize(("text", "found"), [
    ("患者身份证号110101199003074518已核实", ["id_card"]),
    ("身份证 11010119900307451X", ["id_card"]),
    ("家属电话13812345678", ["mobile"]),
    ("联系 +86 138-1234-5678 与 110101199003074518", ["id_card", "mobile"]),
    ("家属电话138****5678", []),                  # masked
    ("咨询电话 0571-86661234", []),               # the hospital's landline
    ("已赔付 13800 元，编号 2026031412", []),      # amounts and short numbers
])
def test_personal_data_is_found_without_being_copied(text, found):
    assert personal_data("情况通报", text) == found
    findings = lint_statement("情况通报", text + "，后续进展将及时通报。", None)
    assert findings == ([Finding("personal_data", {"kinds": found})] if found else [])
    for lang in ("en", "zh-CN"):
        assert not any(ch.isdigit() for f in findings for ch in labels.finding(f.code, f.facts, lang))
    if found == ["id_card", "mobile"]:
        assert labels.finding("personal_data", findings[0].facts, "en") == (
            "personal data: ID card number, mobile phone number (remove or mask before release)")
        assert labels.finding("personal_data", findings[0].facts, "zh-CN") == (
            "含个人信息：身份证号、手机号（发布前请删除或打码）")


def _approved(svc, iid, people, body):
    st = draft(svc, iid, people, body=body, next_update="明日10时")
    for who in ("l1", "l2", "l3"):
        st = svc.review_statement(st.id, principal=by(people[who]), approve=True)
    assert st.status == "approved"
    return st


def test_personal_data_blocks_release_without_a_leadership_override(svc, roster, people):
    iid = open_incident(svc, severity="II")
    st = _approved(svc, iid, people, "家属（电话13812345678）情绪稳定，后续进展将及时通报。")
    with pytest.raises(Conflict, match="contains personal data"):
        svc.release_statement(st.id, principal=by(people["spokesperson"]))
    with pytest.raises(Conflict):
        svc.release_statement(st.id, principal=by(people["l3"]))  # leadership too needs the explicit override
    assert not roster.is_leadership(people["l1"])
    with pytest.raises(Forbidden) as exc:
        svc.release_statement(st.id, principal=by(people["l1"]), override=True, reason="家属同意")
    assert exc.value.rule == "release.personal_data"
    with pytest.raises(InputError) as exc:
        svc.release_statement(st.id, principal=by(people["l3"]), override=True, reason="  ")
    assert exc.value.field == "reason"
    assert svc.statements(iid)[0].status == "approved"  # nothing changed so far
    released = svc.release_statement(st.id, principal=by(people["l3"]), override=True, reason="家属书面同意公开")
    assert released.status == "released"
    (ov,) = [e for e in svc.timeline(iid) if e.kind == "statement_release_override"]
    assert (ov.actor, ov.data["reason"], ov.data["personal_data"]) == (
        people["l3"], "家属书面同意公开", ["mobile phone number"])
    assert "13812345678" not in str([e.data for e in svc.timeline(iid)])  # the number is not copied anywhere


def test_warnings_are_recorded_at_draft_review_and_release(svc, people):
    iid = open_incident(svc, severity="III")  # minor: two levels
    st = draft(svc, iid, people, title="关于网传我院患者术后死亡一事的情况通报与说明", body="我院已关注。")
    svc.review_statement(st.id, principal=by(people["l1"]), approve=True)
    svc.review_statement(st.id, principal=by(people["l2"]), approve=True)
    svc.release_statement(st.id, principal=by(people["spokesperson"]))
    expected = ["title has 22 characters (normally at most 20)", "does not say when the next update will come"]
    kinds = ("statement_drafted", "statement_reviewed", "statement_reviewed", "statement_released")
    events = [e for e in svc.timeline(iid) if e.kind.startswith("statement_")]
    assert [e.kind for e in events] == list(kinds)
    assert all(e.data["warnings"] == expected for e in events)


def test_cli_prints_the_warnings_with_each_result(tmp_path, monkeypatch):
    import json

    from helpers import crisis_env
    from typer.testing import CliRunner

    from crisis import cli
    from crisis.cli import common

    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def crisis(*args):
        common._state.clear()
        result = runner.invoke(cli.app, list(args))
        assert result.exit_code == 0, result.output
        return result

    crisis("open", "--title", "t", "--category", "medical_dispute", "--severity", "III")
    drafted = json.loads(crisis("statement", "draft", "1", "--title", "情况通报", "--body", "我院yyds",
                                "--by", "publicity_head", "--json").stdout)
    assert drafted["warnings"] == ["internet slang: yyds", "does not say when the next update will come"]
    shown = crisis("statement", "review", "1", "--approve", "--by", "info_staff")
    assert "warning: internet slang: yyds" in shown.stderr and "statement #1: in_review" in shown.stdout
