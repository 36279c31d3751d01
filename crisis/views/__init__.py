"""Read models: what adapters show, each built from one read transaction (one consistent snapshot).

Every view is a dataclass of rows and plain values; `crisis.jsonout` turns it into JSON. The CLI, the HTTP API,
the web pages and the drill reports read through here, so every adapter reads the same thing:
- crisis.views.detail: one incident (or one escalation) with everything shown about it, and single reads;
- crisis.views.lists: the incident list, escalations, a person's work, events since an id (one page each);
- crisis.views.outline: a playbook for one grade;
- crisis.views.drills: drill runs' scorecards and report files on disk;
- crisis.views.paging: a page, and how a view selects records.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each view by the module that holds it. A module loads when one of its views is first used (PEP 562), so a
# write command that prints its incident's tasks loads `detail`, not the lists, the outline or the drills.
_HOME = {
    "detail": ["EscalationDetail", "IncidentDetail", "TaskView", "allowed_triggers", "escalation_detail",
               "incident_detail", "incident_row", "incident_tasks", "tasks_by_id", "timeline"],
    "drills": ["DRILL_REPORT_FILE", "DrillRun", "drill_file", "drill_runs"],
    "lists": ["IncidentRow", "MyWork", "escalation_page", "events_since", "incident_list", "my_work"],
    "outline": ["OutlineStage", "OutlineTask", "PlaybookOutline", "outline_json", "playbook_outline"],
    "paging": ["DEFAULT_PAGE", "Page"],
}
_MODULE = {name: module for module, names in _HOME.items() for name in names}
__all__ = ["DEFAULT_PAGE", "DRILL_REPORT_FILE", "DrillRun", "EscalationDetail", "IncidentDetail", "IncidentRow",
           "MyWork", "OutlineStage", "OutlineTask", "Page", "PlaybookOutline", "TaskView", "allowed_triggers",
           "drill_file", "drill_runs", "escalation_detail", "escalation_page", "events_since", "incident_detail",
           "incident_list", "incident_row", "incident_tasks", "my_work", "outline_json", "playbook_outline",
           "tasks_by_id", "timeline"]  # the names of _HOME (tests/test_views.py checks)


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later reads (and monkeypatch in tests) see a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and readers see: the same names, eagerly
    from crisis.views.detail import (
        EscalationDetail,
        IncidentDetail,
        TaskView,
        allowed_triggers,
        escalation_detail,
        incident_detail,
        incident_row,
        incident_tasks,
        tasks_by_id,
        timeline,
    )
    from crisis.views.drills import DRILL_REPORT_FILE, DrillRun, drill_file, drill_runs
    from crisis.views.lists import IncidentRow, MyWork, escalation_page, events_since, incident_list, my_work
    from crisis.views.outline import OutlineStage, OutlineTask, PlaybookOutline, outline_json, playbook_outline
    from crisis.views.paging import DEFAULT_PAGE, Page
