"""Release review for public statements (公众号管理制度): three levels, leadership for anything major.

Level 1: information staff check completeness, accuracy and format (monitoring group).
Level 2: the information-department head checks truth, legality, timeliness and fit.
Level 3: leadership approves anything major, sensitive or likely to draw attention.
"""

from __future__ import annotations

import re

from crisis.engine.policy import reviewer_level_ok
from crisis.principal import for_person
from crisis.roster import Roster

LEVELS = ("information staff", "information department head", "leadership")
SLANG = ("yyds", "绝绝子", "躺平", "内卷", "吃瓜", "破防", "666")


def required_levels(major: bool) -> tuple[str, ...]:
    return LEVELS if major else LEVELS[:2]


def reviewer_qualifies(roster: Roster, person: str, level: int) -> bool:
    """Whether a roster person may review at `level` (the rule itself lives in `engine.policy`)."""
    return reviewer_level_ok(for_person(roster, person), level)


def lint_statement(title: str, body: str, next_update: str | None) -> list[str]:
    """Warnings from the writing rules: short titles, no slang, say when the next update comes."""
    warnings = []
    if len(title) > 20:
        warnings.append(f"title has {len(title)} characters (normally at most 20)")
    text = (title + body).lower()
    # digit slang ("666") only as a number of its own, not inside a phone number or an amount
    found = [w for w in SLANG if (re.search(rf"(?<!\d){w}(?!\d)", text) if w.isdigit() else w.lower() in text)]
    if found:
        warnings.append(f"internet slang: {', '.join(found)}")
    if not next_update and not re.search(r"(后续|进展|next update|further updates)", body, re.I):
        warnings.append("does not say when the next update will come")
    return warnings
