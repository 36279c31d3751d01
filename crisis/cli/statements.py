"""`crisis statement …`: public statements and their three-level review."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crisis.cli.common import (
    ByOpt,
    JsonOpt,
    dump,
    emit,
    err,
    esc,
    out,
    principal,
    run,
    service,
)

if TYPE_CHECKING:  # the service and its models load when a command runs, not for `crisis --help`
    from crisis.store.models import Statement

statement_app = typer.Typer(no_args_is_help=True, help="Public statements and their three-level review.")


def _show(st: Statement, as_json: bool, line: str) -> None:
    """The result with the writing rules' warnings: in JSON under "warnings", on screen one line each."""
    from crisis.service.statements import statement_warnings

    warnings = statement_warnings(st)
    if as_json:
        emit({**dump(st), "warnings": warnings})
        return
    out.print(line)
    for w in warnings:
        err.print(f"[yellow]warning:[/] {esc(w)}", highlight=False)


@statement_app.command("draft")
def statement_draft(incident_id: int, title: Annotated[str, typer.Option()], body_text: Annotated[
        str, typer.Option("--body")], next_update: str | None = None, major: bool | None = None,
        by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Draft a statement; it enters review (three levels when major)."""
    def body() -> None:
        st = service().draft_statement(incident_id, title=title, body=body_text, principal=principal(by), major=major,
                                       next_update=next_update)
        _show(st, as_json, f"statement #{st.id} in review ({'major' if st.major else 'minor'})")
    run(body, as_json)


@statement_app.command("review")
def statement_review(statement_id: int, approve: Annotated[bool, typer.Option("--approve/--reject")],
                     comment: str | None = None, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Review at the next level (information staff → information head → leadership)."""
    def body() -> None:
        st = service().review_statement(statement_id, principal=principal(by), approve=approve, comment=comment)
        _show(st, as_json, f"statement #{st.id}: {st.status} ({len(st.reviews)} review(s))")
    run(body, as_json)


@statement_app.command("release")
def statement_release(
    statement_id: int,
    override: Annotated[bool, typer.Option(help="Leadership: release despite a personal-data finding.")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --override; recorded).")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release an approved statement (one containing personal data only with a leadership --override)."""
    def body() -> None:
        st = service().release_statement(statement_id, principal=principal(by), override=override, reason=reason)
        _show(st, as_json, f"statement #{st.id} released")
    run(body, as_json)
