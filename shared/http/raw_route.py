"""Hot endpoints that take the raw request: FastAPI documents them, Starlette dispatches them.

An endpoint of a :class:`RawRoute` is ``async def endpoint(request: Request) -> Response``: it reads
and checks the request itself and serialises its own answer. FastAPI would still solve (empty)
dependencies and wrap the call for every request, about a tenth of a small request's cost; this
route class hands the endpoint to Starlette's request/response wrapper as it is. The OpenAPI
operation (``responses``, ``openapi_extra``, ``response_model``) is generated as for any route,
and exceptions (``Problem``, ``RequestValidationError``) reach the app's handlers as usual.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter


class RawRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        parameters = list(inspect.signature(endpoint, eval_str=True).parameters.values())
        if len(parameters) != 1 or parameters[0].annotation is not Request:
            raise TypeError(f"a raw endpoint takes exactly one Request parameter: {endpoint.__qualname__}")
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"a raw endpoint must be async: {endpoint.__qualname__}")
        if kwargs.get("dependencies"):  # they would be skipped silently: refuse them instead
            raise TypeError(f"a raw endpoint checks its request itself, without dependencies: {path}")
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


def invalid(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    """A raw endpoint's own check that failed, answered as FastAPI answers its declared ones (422,
    the field at ``loc``)."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": None}])


def add_routes_first(app: FastAPI, router: APIRouter) -> None:
    """Put ``router``'s routes first among the app's own routes, rather than including the router:
    routes are matched in order, and an included router is one more level of matching and
    dispatch on every request (the router's prefix is already part of each route's path)."""
    routes = list(router.routes)
    for route in routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"only path operations can be added this way, not {route!r}")
    app.router.routes[0:0] = routes
