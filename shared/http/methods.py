"""A method the path does not serve: a 405 problem+json whose ``Allow`` lists every method the
path serves (RFC 9110 15.5.6: the target resource's supported methods). And HEAD, which every
server must support (RFC 9110 9.1): answered as the GET of the same path, without the content.

Starlette answers with the methods of the first route whose path matched, and FastAPI registers
one route per operation, so ``PATCH /v1/teams`` was told ``Allow: GET`` although ``POST`` is
served too, and ``POST /v1/teams/{name}`` ``Allow: GET`` although PATCH, PUT and DELETE are.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import Problem, ProblemResponse, problem_response

# The methods a route here may serve, in the order the Allow header lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install_method_not_allowed(app: FastAPI) -> None:
    """A 405 names, in ``Allow`` and in its detail, every method some route serves at the path;
    HEAD is served wherever GET is."""

    async def not_allowed(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, HTTPException)
        allowed = served_methods(app, request.scope)
        method, path = request.method, request.url.path
        headers = dict(getattr(exc, "headers", None) or {})
        detail = str(exc.detail)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
            detail = f"{method} is not served at {path}; use {', '.join(allowed)}"
        return problem_response(Problem(405, "Method not allowed", detail, headers=headers), path)

    # Keyed by status: Starlette tries it before the HTTPException handler of install_problem_handlers.
    app.add_exception_handler(405, not_allowed)
    app.add_middleware(HeadAsGet, routed=app)


class HeadAsGet:
    """ASGI middleware: a HEAD at a path GET serves runs as that GET (key check, ETag, 304 and
    all), and any answer to a HEAD goes out without its content, its headers (Content-Length
    included) as a GET would have them. FastAPI routes HEAD nowhere: it was a 405."""

    def __init__(self, app: ASGIApp, routed: FastAPI) -> None:
        self.app = app
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        if _serves(self.routed, scope, "GET"):
            scope = {**scope, "method": "GET"}

        async def without_content(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest is dropped too; the answer ends with its last part
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, without_content)


def served_methods(app: FastAPI, scope: Any) -> list[str]:
    """The methods with a route at the scope's path, HEAD wherever GET is (see :class:`HeadAsGet`)."""
    return [method for method in _METHODS if _serves(app, scope, "GET" if method == "HEAD" else method)]


def _serves(app: FastAPI, scope: Any, method: str) -> bool:
    """Whether a route serves ``method`` at the scope's path (asked of each route as routing would)."""
    asked = {**scope, "method": method}
    return any(route.matches(asked)[0] == Match.FULL for route in app.router.routes)
