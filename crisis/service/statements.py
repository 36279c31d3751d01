"""Public statements: draft, three-level review by people other than the drafter, release.

The writing rules' warnings (`statement_warnings`) are recorded at draft, review and release, and adapters
print them with each command's result; personal data blocks release unless leadership overrides it with a
reason, which the timeline records."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import func, select

from crisis import labels, textinput
from crisis.engine import policy
from crisis.engine.fsm import FINAL
from crisis.errors import Conflict, InputError
from crisis.principal import Principal
from crisis.service.base import ServiceBase
from crisis.severity import Severity
from crisis.statements import Finding, lint_statement, personal_data, required_levels
from crisis.store.models import Statement


class StatementCommands(ServiceBase):
    def draft_statement(self, incident_id: int, *, title: str, body: str, principal: Principal,
                        major: bool | None = None, next_update: str | None = None, channel: str = "official_account",
                        expected_version: int | None = None, now: datetime | None = None) -> Statement:
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        title = textinput.one_line(title, "title", max_len=textinput.TITLE_MAX)
        body = textinput.block(body, "body", max_len=textinput.BODY_MAX)
        next_update = textinput.optional_line(next_update, "next_update", max_len=textinput.LINE_MAX)
        channel = textinput.one_line(channel, "channel", max_len=textinput.LINE_MAX)
        with self._write(who) as (s, tx):
            inc = self._incident(s, incident_id, lock=True, expected_version=expected_version)
            if inc.stage in FINAL:
                raise Conflict(f"incident #{inc.id} is {inc.stage}")
            is_major = major if major is not None else Severity(inc.severity).rank <= 2
            st = Statement(incident_id=inc.id, title=title, body=body, major=is_major,
                           channel=channel, drafted_by=actor, drafted_at=now, next_update=next_update,
                           status="in_review")
            s.add(st)
            s.flush()
            self._event(s, tx, at=now, actor=actor, kind="statement_drafted", incident_id=inc.id,
                        statement=st.id, title=st.title, major=is_major, warnings=statement_warnings(st))
        return st

    def review_statement(self, statement_id: int, *, principal: Principal, approve: bool,
                         comment: str | None = None, expected_level: int | None = None,
                         now: datetime | None = None) -> Statement:
        """Review at the statement's next level; `expected_level`, the one the reviewer saw, makes a review that
        another reviewer overtook a conflict instead of a review at the following level."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        comment = textinput.optional_block(comment, "comment", max_len=textinput.NOTE_MAX)
        with self._write(who) as (s, tx):
            st = self._statement_locked(s, statement_id)
            levels = required_levels(st.major)
            level = len(st.reviews) + 1
            if expected_level is not None and expected_level != level and st.status == "in_review":
                last = f": {st.reviews[-1]['by']} reviewed it meanwhile" if st.reviews else ""
                raise Conflict(f"statement #{st.id} is at review level {level}, not {expected_level}{last}")
            policy.enforce(policy.may_review(who, statement_facts(st)))
            st.reviews = [*st.reviews, {"level": level, "by": actor, "approve": approve, "at": now.isoformat(),
                                        "comment": comment}]
            if not approve:
                st.status = "rejected"
            elif level == len(levels):
                st.status = "approved"
            s.add(st)
            self._event(s, tx, at=now, actor=actor, kind="statement_reviewed", incident_id=st.incident_id,
                        statement=st.id, level=level, approve=approve, comment=comment, status=st.status,
                        warnings=statement_warnings(st))
        return st

    def release_statement(self, statement_id: int, *, principal: Principal, override: bool = False,
                          reason: str | None = None, expected_version: int | None = None,
                          now: datetime | None = None) -> Statement:
        """Release an approved statement. One containing personal data needs `override` by leadership with a
        `reason` (audited as statement_release_override). `expected_version`, the incident version the caller
        saw, makes a release from a stale page a conflict."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        reason = textinput.optional_line(reason, "reason", max_len=textinput.REASON_MAX)
        if override and not reason:
            raise InputError("releasing over a personal-data finding needs a reason", field="reason")
        with self._write(who) as (s, tx):
            st = self._statement_locked(s, statement_id)
            if expected_version is not None:
                self._incident(s, st.incident_id, expected_version=expected_version)
            policy.enforce(policy.may_release(who, statement_facts(st), override=override))
            found = personal_data(st.title, st.body, st.next_update)
            if found:
                self._event(s, tx, at=now, actor=actor, kind="statement_release_override",
                            incident_id=st.incident_id, statement=st.id, reason=reason,
                            personal_data=[labels.label("personal_data", k, "en") for k in found])
            first = s.exec(select(func.count()).select_from(Statement).where(
                Statement.incident_id == st.incident_id, Statement.status == "released")).one() == 0
            st.status, st.released_at, st.released_by = "released", now, actor
            s.add(st)
            self._event(s, tx, at=now, actor=actor, kind="statement_released", incident_id=st.incident_id,
                        statement=st.id, title=st.title, first=first, next_update=st.next_update,
                        warnings=statement_warnings(st))
        return st


def statement_findings(st: Statement) -> list[Finding]:
    """The writing rules' findings for a statement, as data (the web words them in the page's language)."""
    return lint_statement(st.title, st.body, st.next_update)


def statement_warnings(st: Statement, lang: str = "en") -> list[str]:
    """The findings worded in `lang`: what CLI and API print with every statement command and what the
    timeline records (in English, the audit's language)."""
    return [labels.finding(f.code, f.facts, lang) for f in statement_findings(st)]


def statement_facts(st: Statement) -> policy.StatementFacts:
    """What the policy rules read about a statement (approvals only count towards release)."""
    return policy.StatementFacts(id=st.id or 0, status=st.status, major=st.major, drafted_by=st.drafted_by,
                                 reviewed_by=tuple(r["by"] for r in st.reviews),
                                 approved=sum(1 for r in st.reviews if r["approve"]),
                                 levels=len(required_levels(st.major)),
                                 personal_data=bool(personal_data(st.title, st.body, st.next_update)))
