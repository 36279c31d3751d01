"""One error shape for every refusal: `{"error": {"code", "message", "field"}}` (plus `allowed` for an
illegal trigger, `rule` for a policy refusal, `retry_after` for throttling).

Typed errors map to statuses by type, never by message; anything unexpected becomes a logged 500 with
the same shape and no trace. The body-size guard is here too: a body over the limit is refused with 413
before any handler (or JSON parser) sees it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crisis.accounts import TooManyAttempts, Unauthenticated
from crisis.errors import Busy, CrisisError, Forbidden, InputError, NotFound, Unavailable
from crisis.logs import get_logger

MAX_BODY = 1024 * 1024  # 1 MiB

_STATUS_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                 422: "invalid", 429: "too_many_attempts", 500: "internal", 503: "unavailable"}


class ApiError(Exception):
    """An adapter-level refusal (bad credentials, missing CSRF token, wrong scope, bad signature)."""

    def __init__(self, status: int, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.extra = status, message, field, extra


def error_body(status: int, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": _STATUS_CODES.get(status, "error"), "message": message, "field": field, **extra}}


def error_response(status: int, message: str, field: str | None = None, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(status, message, field, **extra), status_code=status, headers=headers)


def crisis_status(exc: CrisisError) -> int:
    """The HTTP status of a typed error: by class, most specific first."""
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, TooManyAttempts):
        return 429
    if isinstance(exc, InputError):
        return 422
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, Unavailable):
        return 503
    return 409  # Conflict and its kinds: illegal trigger, guard, stale version, wrong state


def _crisis_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrisisError)
    status = crisis_status(exc)
    extra: dict[str, Any] = {}
    if getattr(exc, "allowed", None) is not None:
        extra["allowed"] = exc.allowed  # type: ignore[attr-defined]
    if getattr(exc, "rule", None):
        extra["rule"] = exc.rule  # type: ignore[attr-defined]
    if getattr(exc, "changes", None) is not None:
        extra["changes"] = exc.changes  # type: ignore[attr-defined]
    headers = None
    if isinstance(exc, TooManyAttempts):
        extra["retry_after"] = exc.retry_after
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, Busy):
        headers = {"Retry-After": "1"}
    message = exc.message if isinstance(exc, InputError) else str(exc)
    return error_response(status, message, getattr(exc, "field", None), headers=headers, **extra)


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
