"""`crisis task …`: tasks assigned by the playbook."""

from __future__ import annotations

from typing import Annotated

import typer

from crisis.cli.common import (
    ByOpt,
    JsonOpt,
    _task_table,
    dump,
    emit,
    esc,
    out,
    principal,
    reader,
    run,
    service,
)
from crisis.durations import format_duration

task_app = typer.Typer(no_args_is_help=True, help="Tasks assigned by the playbook.")

@task_app.command("done")
def task_done(task_id: int, note: str | None = None, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Mark a task done; its pending escalations stop."""
    def body() -> None:
        t = service().complete_task(task_id, principal=principal(by), note=note)
        if as_json:
            emit(dump(t))
        else:
            late = (t.done_at - t.due_at).total_seconds() if t.due_at and t.done_at else 0
            out.print(f"task #{t.id} {esc(t.key)} done" + (f", {format_duration(late)} late" if late > 0 else ""))
    run(body, as_json)


@task_app.command("list")
def task_list(incident_id: int, as_json: JsonOpt = False) -> None:
    """Tasks of an incident."""
    def body() -> None:
        from crisis import views

        svc = reader()
        if as_json:
            emit([dump(t) for t in views.incident_tasks(svc, incident_id)])
        else:
            _task_table(svc, incident_id)
    run(body, as_json)


@task_app.command("applicable")
def task_applicable(task_id: int, reason: Annotated[str, typer.Option(help="Why it applies to this incident.")],
                    by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Mark an optional task applicable for this incident: it then holds its stage like a required one."""
    def body() -> None:
        t = service().mark_applicable(task_id, reason=reason, principal=principal(by))
        if as_json:
            emit(dump(t))
        else:
            out.print(f"task #{t.id} {t.key} ({t.title_zh}) is now required for this incident")
    run(body, as_json)
