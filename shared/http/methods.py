"""A method the path does not serve: a 405 problem+json whose ``Allow`` lists every method the
path serves (RFC 9110 15.5.6: the target resource's supported methods).

Starlette answers with the methods of the first route whose path matched, and FastAPI registers
one route per operation, so ``PATCH /v1/teams`` was told ``Allow: GET`` although ``POST`` is
served too, and ``POST /v1/teams/{name}`` ``Allow: GET`` although PATCH, PUT and DELETE are.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.http.problems import Problem, ProblemResponse, problem_response

# The methods a route here may serve, in the order the Allow header lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install_method_not_allowed(app: FastAPI) -> None:
    """A 405 names, in ``Allow`` and in its detail, every method some route serves at the path."""

    async def not_allowed(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, HTTPException)
        allowed = served_methods(app, request)
        method, path = request.method, request.url.path
        headers = dict(getattr(exc, "headers", None) or {})
        detail = str(exc.detail)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
            detail = f"{method} is not served at {path}; use {', '.join(allowed)}"
        return problem_response(Problem(405, "Method not allowed", detail, headers=headers), path)

    # Keyed by status: Starlette tries it before the HTTPException handler of install_problem_handlers.
    app.add_exception_handler(405, not_allowed)


def served_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods with a route at the request's path (asked of each route as it would be routed)."""
    served = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            served.append(method)
    return served
