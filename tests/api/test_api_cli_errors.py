"""The CLI under --json and the HTTP API refuse the same request with the same error body (crisis.errors maps
the types for both): same code, message, field and details, so a script can switch from one to the other."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from apihelpers import API, error, sign_in
from helpers import Cli, crisis_env

from crisis.errors import (
    CODES,
    Busy,
    Change,
    Conflict,
    CrisisError,
    DatabaseMissing,
    Forbidden,
    GuardFailed,
    IllegalTrigger,
    InputError,
    NotFound,
    StaleVersion,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
    error_body,
    status_of,
)


@pytest.fixture()
def cli(tmp_path, monkeypatch, svc) -> Cli:
    """The command line on the API's own database (svc's file in tmp_path)."""
    for name, value in crisis_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CRISIS_USER", raising=False)
    return Cli(tmp_path)


def test_cli_and_api_answer_the_same_body(client, cli, svc):
    sign_in(client, "president")
    iid = client.post(f"{API}/incidents", json={"title": "网传候诊5小时", "category": "medical_dispute"}).json()
    iid = iid["incident"]["id"]
    cases = [  # (API call, the same request at the shell)
        (lambda: client.post(f"{API}/incidents/{iid}/fire", json={"trigger": "close"}),
         ("fire", str(iid), "close", "--by", "president")),
        (lambda: client.post(f"{API}/incidents/{iid}/fire", json={"trigger": "report"}),
         ("fire", str(iid), "report", "--by", "president")),
        (lambda: client.get(f"{API}/incidents/99"), ("show", "99")),
    ]
    for api_call, argv in cases:
        res = api_call()
        shell = cli.json(*argv, code=2)
        assert shell == res.json(), (argv, shell, res.json())
        assert error(res)["code"] == CODES[res.status_code]
    assert [error(c[0]())["code"] for c in cases] == ["conflict", "conflict", "not_found"]


def test_every_error_type_has_a_status_and_code():
    cases: list[tuple[CrisisError, int, str]] = [
        (InputError("too long", field="title", file="x.yaml", line=3), 422, "invalid"),
        (NotFound("no incident #9"), 404, "not_found"),
        (Forbidden("leadership only", rule="override"), 403, "forbidden"),
        (IllegalTrigger("close", "monitoring", ["report"]), 409, "conflict"),
        (GuardFailed("monitoring", ["compile_report"]), 409, "conflict"),
        (StaleVersion(1, 2, 3, [Change("stage_changed", "president", datetime(2026, 3, 14, 14, tzinfo=UTC),
                                       "reported", "assessing")]), 409, "conflict"),
        (Conflict("already done"), 409, "conflict"),
        (Busy("database busy"), 503, "unavailable"),
        (DatabaseMissing("no crisis database"), 503, "unavailable"),
        (Unavailable("down"), 503, "unavailable"),
        (Unauthenticated("wrong person or password"), 401, "unauthenticated"),
        (TooManyAttempts("locked", 59.2), 429, "too_many_attempts"),
    ]
    for exc, status, code in cases:
        assert status_of(exc) == status and error_body(exc)["error"]["code"] == code, exc
    body = error_body(cases[0][0])["error"]
    assert body == {"code": "invalid", "message": "too long", "field": "title", "file": "x.yaml", "line": 3}
    assert error_body(cases[2][0])["error"]["rule"] == "override"
    assert error_body(cases[3][0])["error"]["allowed"] == ["report"]
    assert error_body(cases[4][0])["error"]["tasks"] == ["compile_report"]
    assert error_body(cases[5][0])["error"]["changes"] == [
        "stage_changed by president at 2026-03-14T14:00:00Z (reported → assessing)"]
    assert error_body(cases[7][0])["error"]["retry_after"] == 1
    assert error_body(cases[11][0])["error"]["retry_after"] == 60
