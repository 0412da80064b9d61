"""RFC 9457 problem details for every error any service returns."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db.errors import is_statement_timeout, is_transient_database_error

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Problem(Exception):
    """Raise anywhere in a request to answer with problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        type_: str = "about:blank",
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.type = type_


def problem_response(problem: Problem, instance: str | None = None) -> ProblemResponse:
    body: dict[str, Any] = {"type": problem.type, "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    if instance:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = problem.errors
    return ProblemResponse(body, status_code=problem.status, headers=problem.headers)


def field_errors(errors: Any, *, in_request: bool = False) -> list[dict[str, Any]]:
    """Pydantic errors as ``{"field": "/a/0/b", "message": ...}`` (an RFC 6901 JSON pointer to the
    culprit). ``in_request``: FastAPI's locations, which start with where in the request (``body``,
    dropped: the pointer is into the body; ``query``, ``path``, ``header``, kept)."""
    out = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if in_request and loc[:1] == ["body"]:
            loc = loc[1:]
        pointer = "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)
        out.append({"field": pointer or "/", "message": error.get("msg", "invalid")})
    return out


def not_json(errors: Any) -> str | None:
    """The detail for a body that is not JSON at all (a 400, as for a webhook), else None.

    FastAPI reports the syntax error at ``("body", <character offset>)`` and pydantic's
    ``model_validate_json`` at ``()``: neither location is a field of the body."""
    for error in errors:
        if error.get("type") != "json_invalid":
            continue
        reason = str((error.get("ctx") or {}).get("error") or error.get("msg") or "")
        reason = reason.removeprefix("Invalid JSON: ")
        loc = error.get("loc", ())
        if loc and isinstance(loc[-1], int):
            reason = f"{reason} at character {loc[-1]}"
        return f"the body is not valid JSON: {reason}" if reason else "the body is not valid JSON"
    return None


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, RequestValidationError)
        malformed = not_json(exc.errors())
        if malformed is not None:
            return problem_response(Problem(400, "Bad request", malformed), request.url.path)
        errors = field_errors(exc.errors(), in_request=True)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(Problem(422, "Invalid request", detail, errors=errors), request.url.path)

    async def on_http(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, StarletteHTTPException)
        problem = Problem(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )
        return problem_response(problem, request.url.path)

    async def on_database(request: Request, exc: Exception) -> ProblemResponse:
        # The database away for a moment (a restart, a failover, a pool with no free connection):
        # the client may retry. So may it after a statement timeout (DATABASE_STATEMENT_TIMEOUT_S):
        # most likely the database is overloaded, and the client's own retries are bounded (a
        # consumer's message is another matter: shared/db/errors.py). Any other database error is
        # a bug, answered and logged as one.
        timed_out = is_statement_timeout(exc)
        if not (timed_out or is_transient_database_error(exc)):
            raise exc
        log.warning(
            "database statement timed out, answered 503"
            if timed_out
            else "database unavailable, answered 503",
            extra={"path": request.url.path, "error": type(exc).__name__},
        )
        problem = Problem(
            503,
            "Service unavailable",
            "the database is unavailable for the moment; retry later",
            headers={"Retry-After": "1"},
        )
        return problem_response(problem, request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
        # A bug, not bad input: no detail (it could carry data). Starlette re-raises the exception
        # after this answer, so the server logs it with its traceback.
        problem = Problem(500, "Internal error", "an unexpected error occurred; it was logged")
        return problem_response(problem, request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(DBAPIError, on_database)
    app.add_exception_handler(PoolTimeout, on_database)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
