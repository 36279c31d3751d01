"""`crisis playbook …`: validate and inspect playbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crisis.cli.common import (
    JsonOpt,
    emit,
    out,
    run,
    settings,
)
from crisis.console import table
from crisis.durations import format_duration

playbook_app = typer.Typer(no_args_is_help=True, help="Playbooks: validate and inspect.")

@playbook_app.command("validate")
def playbook_validate(paths: Annotated[list[Path] | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
    """Validate playbook files (default: the playbook folder) and the roster."""
    def body() -> None:
        from crisis.playbook import PlaybookSet, check_roster, load_playbook, load_playbooks
        from crisis.roster import load_roster

        if paths:
            books = {str(p): load_playbook(p) for p in paths}
            pbs = PlaybookSet({b.category: b for b in books.values()}, {b.category: f for f, b in books.items()})
        else:
            pbs = load_playbooks(settings().playbooks_dir)
        check_roster(pbs, load_roster(settings().roster_path))
        found = [b.category for b in pbs]
        emit({"ok": True, "categories": found}) if as_json else out.print(f"ok: {', '.join(found)}")
    run(body, as_json)


@playbook_app.command("show")
def playbook_show(category: str, severity: str = "II", as_json: JsonOpt = False) -> None:
    """Stages, tasks, deadlines and escalation chains of a playbook for one grade."""
    def body() -> None:
        from crisis import views  # loaded when run: `crisis --help` stays light
        from crisis.playbook import load_playbooks
        from crisis.severity import Severity

        outline = views.playbook_outline(load_playbooks(settings().playbooks_dir).get(category),
                                         Severity.parse(severity))
        if as_json:
            emit(views.outline_json(outline))
            return
        t = table("stage", "key", "group", "title", "req", "due", "from", wrap=("title",))
        for r in outline.tasks:
            t.add_row(r.stage, r.key, r.group, r.title, "yes" if r.required else "",
                      format_duration(r.due) if r.due else "-", r.anchor)
        out.print(t)
        for st in outline.stages:
            out.print(f"{st.stage}: {' → '.join(st.chain)} every {format_duration(st.wait)} "
                      f"(repeat {st.repeat})", highlight=False)
    run(body, as_json)
