"""Refuse a query parameter the operation does not declare, or a single-valued one given twice
(400 naming ``/query/<name>``).

FastAPI ignores any other: ``GET /v1/audit?entitty=team`` answered every entry, silently
unfiltered, and a misspelt ``?coment=`` was lost. And of ``?limit=5&limit=10`` it took one, silently:
only a parameter declared as a list (``list[str]``) takes several values. The names an operation
takes are read once from its dependant (its own parameters and those of its dependencies). Not for
webhooks, whose vendors add query strings of their own, nor for the health and metrics endpoints
(probes and scrapers). A raw route (shared/http/raw_route.py) solves no dependencies: its endpoint
calls this itself.
"""

from __future__ import annotations

import types
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.db.storable import pointer_token
from shared.http.problems import Problem

UNKNOWN_MESSAGE = "not a query parameter of this operation"
REPEATED_MESSAGE = "given more than once: this parameter takes one value"

_SEVERAL = (list, set, frozenset, tuple, deque, Sequence)  # what FastAPI reads as repeated values

_CACHE = "_declared_query"  # an attribute of the route (routes compare by value: no dict key)


def takes_several(annotation: object) -> bool:
    """Whether a parameter of this type takes each of its repeated values (``list[str] | None``),
    as FastAPI decides: a sequence type, optional or annotated, other than str and bytes."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return takes_several(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(takes_several(arg) for arg in get_args(annotation) if arg is not type(None))
    kind = origin or annotation
    return isinstance(kind, type) and issubclass(kind, _SEVERAL) and not issubclass(kind, (str, bytes))


@dataclass(frozen=True)
class DeclaredQuery:
    names: frozenset[str]  # every query parameter (aliases as sent)
    lists: frozenset[str]  # those of them that take several values


def declared_query(dependant: Dependant) -> DeclaredQuery:
    """The query parameters ``dependant`` and its dependencies read, and which of them are lists."""
    names: set[str] = set()
    lists: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        for field in current.query_params:
            model = field.field_info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):  # a query parameter model
                fields = [(f.alias or name, f.annotation) for name, f in model.model_fields.items()]
            else:
                fields = [(field.alias, model)]
            for name, annotation in fields:
                names.add(name)
                if takes_several(annotation):
                    lists.add(name)
        stack.extend(current.dependencies)
    return DeclaredQuery(frozenset(names), frozenset(lists))


async def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not request.scope.get("query_string") or not isinstance(route, APIRoute):
        return  # the scope's bytes, not query_params: a raw hot route calls this on every request
    declared: DeclaredQuery | None = getattr(route, _CACHE, None)
    if declared is None:
        declared = declared_query(route.dependant)
        setattr(route, _CACHE, declared)
    counts = Counter(name for name, _ in request.query_params.multi_items())
    unknown = [name for name in counts if name not in declared.names]
    repeated = [name for name, n in counts.items() if n > 1 and name in declared.names - declared.lists]
    if not unknown and not repeated:
        return
    errors = [{"field": "/query/" + pointer_token(name), "message": UNKNOWN_MESSAGE} for name in unknown]
    errors += [{"field": "/query/" + pointer_token(name), "message": REPEATED_MESSAGE} for name in repeated]
    if unknown:
        takes = f"it takes {', '.join(sorted(declared.names))}" if declared.names else "it takes none"
        detail = f"unknown query parameter {', '.join(unknown[:5])}: {takes}"
    else:
        detail = f"query parameter {', '.join(repeated[:5])} given more than once: give each once"
    raise Problem(400, "Bad request", detail, errors=errors)
