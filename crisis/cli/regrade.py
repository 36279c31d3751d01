"""`crisis regrade`: leadership changes an incident's grade at any time, with a reason."""

from __future__ import annotations

from typing import Annotated

import typer

from crisis.cli.common import ByOpt, JsonOpt, _task_table, app, dump, emit, esc, out, principal, run, service


@app.command("regrade")
def regrade_cmd(
    incident_id: int,
    severity: Annotated[str, typer.Option(help="The new grade I–IV (I gravest).")],
    reason: Annotated[str, typer.Option(help="Why the grade changes (recorded in the timeline).")],
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the grade (leadership): open tasks' deadlines are recomputed for the new grade."""
    def body() -> None:
        from crisis import views

        svc = service()
        before = views.incident_row(svc, incident_id).severity  # a record read: the ORM stays unloaded
        inc = svc.regrade(incident_id, severity=severity, reason=reason, principal=principal(by))
        if as_json:
            emit({"incident": dump(inc), "from": before, "to": inc.severity})
        else:
            out.print(f"#{inc.id}: grade {before} → [bold]{inc.severity}[/] ({esc(reason)})")
            _task_table(svc, incident_id)
    run(body, as_json)
