"""Release review for public statements (公众号管理制度): three levels, leadership for anything major.

Level 1: information staff check completeness, accuracy and format (monitoring group).
Level 2: the information-department head checks truth, legality, timeliness and fit.
Level 3: leadership approves anything major, sensitive or likely to draw attention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

LEVELS = ("information staff", "information department head", "leadership")
SLANG = ("yyds", "绝绝子", "躺平", "内卷", "吃瓜", "破防", "666")


def required_levels(major: bool) -> tuple[str, ...]:
    return LEVELS if major else LEVELS[:2]


# Personal data that must not be published (PIPL): mainland ID card numbers (18 characters with a valid
# date of birth) and mobile numbers (11 digits from 13x-19x, optionally +86 and separators). A hospital's
# landline hotline is not personal data, and a masked number (138****5678) is not flagged.
_ID_CARD = re.compile(r"(?<![\dXx*])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
                      r"(?![\dXx*])")
_MOBILE = re.compile(r"(?<![\d*])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?![\d*])")


TITLE_MAX = 20


@dataclass(frozen=True)
class Finding:
    """One writing-rule warning as data: a `code` (title_length, personal_data, slang, no_next_update) and its
    facts; `crisis.labels.finding` words it in either language, so every adapter shows the same sentence."""

    code: str
    facts: dict[str, Any] = field(default_factory=dict)


def personal_data(title: str, body: str, next_update: str | None = None) -> list[str]:
    """The kinds of personal data in a statement's text ('id_card', 'mobile'; empty when there is none); never
    the data itself, which must not be copied into warnings, the audit timeline or logs."""
    text = " ".join((title, body, next_update or ""))
    found = []
    if _ID_CARD.search(text):
        found.append("id_card")
    if _MOBILE.search(_ID_CARD.sub(" ", text)):
        found.append("mobile")
    return found


def lint_statement(title: str, body: str, next_update: str | None) -> list[Finding]:
    """Findings of the writing rules: short titles, no personal data, no slang, say when the next update
    comes. Shown at draft, review and release; personal data also blocks release (see policy.may_release)."""
    findings = []
    if len(title) > TITLE_MAX:
        findings.append(Finding("title_length", {"n": len(title), "limit": TITLE_MAX}))
    pd = personal_data(title, body, next_update)
    if pd:
        findings.append(Finding("personal_data", {"kinds": pd}))
    text = (title + body).lower()
    # digit slang ("666") only as a number of its own, not inside a phone number or an amount
    found = [w for w in SLANG if (re.search(rf"(?<!\d){w}(?!\d)", text) if w.isdigit() else w.lower() in text)]
    if found:
        findings.append(Finding("slang", {"words": found}))
    if not next_update and not re.search(r"(后续|进展|next update|further updates)", body, re.I):
        findings.append(Finding("no_next_update"))
    return findings
