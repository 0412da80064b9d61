"""One URL per resource: a path with a trailing slash the service does not serve is a 404
problem+json naming the path it does serve, as any unknown path is a 404 problem.

Starlette's default answers it with a bare 307 to an absolute URL built from the request's own
scheme and host: behind a proxy that terminates TLS that is ``http://``, where a client following
it sends its bearer API key in clear (or fails on a refused port); it has no problem body, and a
client that does not follow redirects (httpx's default) is left with an empty answer. The 404
names the served path in its detail, so the mistake is as easy to fix as a redirect would be.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shared.http.problems import Problem, ProblemResponse, problem_response


def install_strict_slashes(app: FastAPI) -> None:
    """No redirect for a trailing-slash mismatch; its 404 problem names the path served."""
    app.router.redirect_slashes = False

    async def not_found(request: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        detail = str(exc.detail)
        served = _served_without_slash(app, request)
        if served is not None:
            detail = f"no {path}; this service serves {served} (without the trailing slash)"
        problem = Problem(404, "Not found", detail, headers=getattr(exc, "headers", None))
        return problem_response(problem, path)

    # Keyed by status: Starlette tries it before the HTTPException handler of install_problem_handlers.
    app.add_exception_handler(404, not_found)


def _served_without_slash(app: FastAPI, request: Request) -> str | None:
    """The request's path less its trailing slash, when a route (of any method) serves that."""
    path = request.scope["path"]
    if path == "/" or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/")}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return str(scope["path"])
    return None
