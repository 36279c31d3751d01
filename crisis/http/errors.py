"""One error shape for every refusal: `{"error": {"code", "message", "field"}}` (plus `allowed` for an
illegal trigger, `rule` for a policy refusal, `changes` for a stale version, `tasks` for a move blocked by open
required tasks, `retry_after` for throttling and a busy database).

Typed errors map to statuses and bodies by type (crisis.errors, shared with the CLI's --json), never by
message; anything unexpected becomes a logged 500 with the same shape and no trace. The body-size guard is
here too: a body over the limit is refused with 413 before any handler (or JSON parser) sees it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crisis.errors import CrisisError, error_body, problem, status_of
from crisis.logs import get_logger

MAX_BODY = 1024 * 1024  # 1 MiB


class ApiError(Exception):
    """An adapter-level refusal (bad credentials, missing CSRF token, wrong scope, bad signature)."""

    def __init__(self, status: int, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, field, extra


def error_response(status: int, message: str, field: str | None = None, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(problem(status, message, field, **extra), status_code=status, headers=headers)


crisis_status = status_of  # the web pages' statuses, by the same table as the API's


def _crisis_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrisisError)
    body = error_body(exc)
    retry = body["error"].get("retry_after")
    headers = {"Retry-After": str(retry)} if retry is not None else None
    return JSONResponse(body, status_code=status_of(exc), headers=headers)


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.message, exc.field, headers=headers, **exc.extra)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ".".join(loc) or None
    msg = str(first.get("msg", "invalid request"))
    return error_response(422, f"{field}: {msg}" if field else msg, field)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    get_logger(component="http").error("http_unhandled_error", path=request.url.path, method=request.method,
                                       error=repr(exc), exc_info=exc)
    return error_response(500, "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(CrisisError, _crisis_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(BodyLimit)


class BodyLimit:
    """Refuse request bodies over MAX_BODY with 413: by Content-Length up front, and by counting the
    bytes of a chunked body as they arrive (the handler never sees more than the limit)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:  # FastAPI re-raises HTTPException from body reading; handled above
                    raise HTTPException(413, f"request body over {self.limit // 1024} KiB")
            return msg

        await self.app(scope, limited, send)

    async def _refuse(self, send: Send) -> None:
        resp = error_response(413, f"request body over {self.limit // 1024} KiB")
        await resp({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
