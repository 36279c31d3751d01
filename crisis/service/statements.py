"""Public statements: draft, three-level review by people other than the drafter, release.

The writing rules' warnings (`statement_warnings`) are recorded at draft, review and release, and adapters
print them with each command's result; personal data blocks release unless leadership overrides it with a
reason, which the timeline records."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from crisis import labels, textinput
from crisis.engine import policy
from crisis.engine.fsm import FINAL
from crisis.errors import Conflict, InputError, NotFound
from crisis.principal import Principal
from crisis.service.base import Rec, ServiceBase, recs
from crisis.severity import Severity
from crisis.statements import Finding, lint_statement, personal_data, required_levels
from crisis.store.prepared import Prepared
from crisis.store.records import Statement
from crisis.store.tables import STATEMENT as ST

_INSERT = Prepared(insert(ST).values({c.key: bindparam(c.key, type_=c.type) for c in ST.columns if c.key != "id"})
                   .returning(ST.c.id))
_LOCKED = Prepared(select(ST).where(ST.c.id == bindparam("b_id")).with_for_update())
_REVIEWED = Prepared(update(ST).where(ST.c.id == bindparam("b_id"))
                     .values(reviews=bindparam("b_reviews", type_=ST.c.reviews.type), status=bindparam("b_status")))
_RELEASED_BEFORE = Prepared(select(func.count()).select_from(ST).where(ST.c.incident_id == bindparam("b_inc"),
                                                                       ST.c.status == "released"))
_RELEASE = Prepared(update(ST).where(ST.c.id == bindparam("b_id"))
                    .values(status="released", released_at=bindparam("b_at", type_=ST.c.released_at.type),
                            released_by=bindparam("b_by")))


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
        with self._core(who) as (conn, tx):  # Core statements on one connection, as the other hot paths
            inc = self._incident_row(conn, incident_id, lock=True, expected_version=expected_version)
            if inc.stage in FINAL:
                raise Conflict(f"incident #{inc.id} is {inc.stage}")
            is_major = major if major is not None else Severity(inc.severity).rank <= 2
            st = Rec(incident_id=inc.id, title=title, body=body, channel=channel, major=is_major, status="in_review",
                     drafted_by=actor, drafted_at=now, released_at=None, released_by=None, next_update=next_update,
                     reviews=[])
            st.id = _INSERT.rows(conn, vars(st))[0][0]
            self._event(conn, tx, at=now, actor=actor, kind="statement_drafted", incident_id=inc.id,
                        statement=st.id, title=st.title, major=is_major, warnings=statement_warnings(st))
        return st.as_record(Statement)

    def review_statement(self, statement_id: int, *, principal: Principal, approve: bool,
                         comment: str | None = None, expected_level: int | None = None,
                         now: datetime | None = None) -> Statement:
        """Review at the statement's next level; `expected_level`, the one the reviewer saw, makes a review that
        another reviewer overtook a conflict instead of a review at the following level."""
        now = self._now(now)
        who = self._principal(principal, now)
        actor = who.person
        comment = textinput.optional_block(comment, "comment", max_len=textinput.NOTE_MAX)
        with self._core(who) as (conn, tx):
            st = self._statement_row(conn, statement_id)
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
            _REVIEWED.run(conn, {"b_id": st.id, "b_reviews": st.reviews, "b_status": st.status})
            self._event(conn, tx, at=now, actor=actor, kind="statement_reviewed", incident_id=st.incident_id,
                        statement=st.id, level=level, approve=approve, comment=comment, status=st.status,
                        warnings=statement_warnings(st))
        return st.as_record(Statement)

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
            raise InputError("releasing over a personal-data finding needs a reason", field="reason",
                             kind="reason_required")
        with self._core(who) as (conn, tx):
            st = self._statement_row(conn, statement_id)
            if expected_version is not None:
                self._incident_row(conn, st.incident_id, expected_version=expected_version)
            policy.enforce(policy.may_release(who, statement_facts(st), override=override))
            found = _personal(st.title, st.body, st.next_update)
            if found:
                self._event(conn, tx, at=now, actor=actor, kind="statement_release_override",
                            incident_id=st.incident_id, statement=st.id, reason=reason,
                            personal_data=[labels.label("personal_data", k, "en") for k in found])
            first = _RELEASED_BEFORE.rows(conn, {"b_inc": st.incident_id})[0][0] == 0
            st.status, st.released_at, st.released_by = "released", now, actor
            _RELEASE.run(conn, {"b_id": st.id, "b_at": now, "b_by": actor})
            self._event(conn, tx, at=now, actor=actor, kind="statement_released", incident_id=st.incident_id,
                        statement=st.id, title=st.title, first=first, next_update=st.next_update,
                        warnings=statement_warnings(st))
        return st.as_record(Statement)

    def _statement_row(self, conn: Connection, statement_id: int) -> Rec:
        """The statement's row, locked for the command (reviews of one statement take turns)."""
        found = recs(_LOCKED, conn, {"b_id": statement_id})
        if not found:
            raise NotFound(what="statement", ref=statement_id)
        return found[0]


def statement_findings(st: Statement | Rec) -> list[Finding]:
    """The writing rules' findings for a statement, as data (the web words them in the page's language)."""
    return list(_lint(st.title, st.body, st.next_update))


# The writing rules read a statement's text at its draft, each review and its release, and the policy's facts
# read it again: the same text gives the same findings (pure functions), so each text is read once.
@lru_cache(maxsize=256)
def _lint(title: str, body: str, next_update: str | None) -> tuple[Finding, ...]:
    return tuple(lint_statement(title, body, next_update))


@lru_cache(maxsize=256)
def _personal(title: str, body: str, next_update: str | None) -> tuple[str, ...]:
    return tuple(personal_data(title, body, next_update))


def statement_warnings(st: Statement | Rec, lang: str = "en") -> list[str]:
    """The findings worded in `lang`: what CLI and API print with every statement command and what the
    timeline records (in English, the audit's language)."""
    return [labels.finding(f.code, f.facts, lang) for f in statement_findings(st)]


def statement_facts(st: Statement | Rec) -> policy.StatementFacts:
    """What the policy rules read about a statement (approvals only count towards release)."""
    return policy.StatementFacts(id=st.id or 0, status=st.status, major=st.major, drafted_by=st.drafted_by,
                                 reviewed_by=tuple(r["by"] for r in st.reviews),
                                 approved=sum(1 for r in st.reviews if r["approve"]),
                                 levels=len(required_levels(st.major)),
                                 personal_data=bool(_personal(st.title, st.body, st.next_update)))
