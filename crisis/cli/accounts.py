"""`crisis user …` and `crisis token …`: sign-in passwords for roster people and API tokens for integrations.

Secrets never travel in argv (visible in `ps` and shell history): a password is read from a hidden prompt,
or from standard input when that is not a terminal; a new token is printed once and stored only hashed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from crisis.cli.common import ByOpt, JsonOpt, Table, dump, emit, esc, iso, local, out, principal, run, service
from crisis.errors import InputError

if TYPE_CHECKING:  # loads when a command runs (password hashing, the database): not for --help
    from crisis.accounts import Accounts

user_app = typer.Typer(no_args_is_help=True, help="Sign-in accounts of roster people.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens for integrations (shown once, stored hashed).")


def accounts() -> Accounts:
    from crisis.accounts import Accounts

    svc = service()
    return Accounts(svc.engine, svc.roster, svc.clock)


def _read_password() -> str:
    if sys.stdin.isatty():
        return str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        raise InputError("no password on standard input", field="password")
    return line.rstrip("\r\n")


@user_app.command("set-password")
def set_password(person: str, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Set PERSON's password (prompted, or one line on stdin); replaces an old one and lifts a lock-out."""
    def body() -> None:
        acc = accounts()
        acc.roster.person(person)  # say "unknown person" before asking for a password
        acc.set_password(person, _read_password(), by=principal(by).person)
        emit({"person": person, "password_set": True}) if as_json else out.print(f"password set for {esc(person)}")
    run(body, as_json)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who uses it, e.g. the monitoring vendor.")],
    scope: Annotated[list[str], typer.Option(
        help="Repeatable: signals, read or write (write implies read); the service checks them.")],
    as_person: Annotated[str | None, typer.Option("--as", help="Roster person the token acts as "
                                                               "(default: the duty officer).")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed this once."""
    def body() -> None:
        acc = accounts()
        who = as_person or acc.roster.roles.get("duty_officer")
        if not who:
            raise InputError("say which roster person the token acts as with --as", field="--as")
        secret, tok = acc.create_token(name, scope, person_id=who, by=principal(by).person)
        if as_json:
            emit({**dump(tok), "token": secret})
        else:
            out.print(f"token #{tok.id} {esc(tok.name)} ({', '.join(tok.scopes)}, acts as {esc(who)}) — shown once:")
            print(secret)
    run(body, as_json)


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """Tokens with their scopes, last use and whether revoked (never the secrets)."""
    def body() -> None:
        toks = accounts().tokens()
        if as_json:
            emit([{k: v for k, v in dump(t).items() if k != "token_hash"} for t in toks])
            return
        t = Table("#", "name", "prefix", "scopes", "acts as", "created", "last used", "revoked")
        for tok in toks:
            t.add_row(str(tok.id), tok.name, tok.prefix + "…", ", ".join(tok.scopes), tok.person_id,
                      local(tok.created_at), local(tok.last_used_at), local(tok.revoked_at))
        out.print(t)
    run(body, as_json)


@token_app.command("revoke")
def token_revoke(token: Annotated[str, typer.Argument(help="Token id or name.")], by: ByOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Revoke a token at once (requests with it are refused from now on)."""
    def body() -> None:
        tok = accounts().revoke_token(token, by=principal(by).person)
        if as_json:
            emit({"id": tok.id, "name": tok.name, "revoked_at": iso(tok.revoked_at)})
        else:
            out.print(f"token #{tok.id} {esc(tok.name)} revoked")
    run(body, as_json)
