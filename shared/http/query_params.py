"""Refuse a query parameter the operation does not declare (400 naming ``/query/<name>``).

FastAPI ignores any other: ``GET /v1/audit?entitty=team`` answered every entry, silently
unfiltered, and a misspelt ``?coment=`` was lost. The names an operation takes are read once from
its dependant (its own parameters and those of its dependencies). Not for webhooks, whose vendors
add query strings of their own, nor for the health and metrics endpoints (probes and scrapers).
A raw route (shared/http/raw_route.py) solves no dependencies: its endpoint calls this itself.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.db.storable import pointer_token
from shared.http.problems import Problem

UNKNOWN_MESSAGE = "not a query parameter of this operation"

_CACHE = "_declared_query"  # an attribute of the route (routes compare by value: no dict key)


def declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameter names ``dependant`` and its dependencies read (aliases as sent)."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        for field in current.query_params:
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):  # a query parameter model
                names.update(f.alias or name for name, f in model.model_fields.items())
            else:
                names.add(field.alias)
        stack.extend(current.dependencies)
    return frozenset(names)


async def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not request.scope.get("query_string") or not isinstance(route, APIRoute):
        return  # the scope's bytes, not query_params: a raw hot route calls this on every request
    declared: frozenset[str] | None = getattr(route, _CACHE, None)
    if declared is None:
        declared = declared_query(route.dependant)
        setattr(route, _CACHE, declared)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in declared]
    if not unknown:
        return
    takes = f"it takes {', '.join(sorted(declared))}" if declared else "it takes none"
    errors = [{"field": "/query/" + pointer_token(name), "message": UNKNOWN_MESSAGE} for name in unknown]
    detail = f"unknown query parameter {', '.join(unknown[:5])}: {takes}"
    raise Problem(400, "Bad request", detail, errors=errors)
