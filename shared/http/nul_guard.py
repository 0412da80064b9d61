"""Refuse U+0000 anywhere in a request: PostgreSQL stores it neither in text nor in JSONB, so a NUL
that reached a query or an INSERT failed there (a 500) instead of being refused as bad input.

One app-wide dependency (``FastAPI(dependencies=[Depends(refuse_nul)])``) rather than a check in
every schema: it covers the JSON body, the query parameters and the path parameters of every
operation, those added later included.
"""

from __future__ import annotations

import json

import orjson
from fastapi import Request

from shared.db.storable import ESCAPED_NUL, NUL, NUL_MESSAGE, nul_pointer
from shared.http.problems import Problem

# Besides the escape (ESCAPED_NUL), a UTF-16/32 body may hold U+0000 anywhere: its ASCII
# characters all have zero bytes.
_ZERO_BYTE = b"\x00"


def body_nul_pointer(body: bytes) -> str | None:
    """Where a JSON body holds U+0000, if it does. The raw bytes only pre-filter: ``\\\\u0000`` is an
    escaped backslash followed by ``u0000``, not a NUL, so only the parsed value decides."""
    if ESCAPED_NUL not in body and _ZERO_BYTE not in body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # what FastAPI's parser also reads: UTF-16/32, NaN, numbers beyond a double
            value = json.loads(body)
        except ValueError:
            return None  # not JSON: the operation's own validation refuses it
    return nul_pointer(value)


def nul_problem(field: str) -> Problem:
    """The 422 for U+0000 at ``field`` (a JSON pointer, or /path/... and /query/...)."""
    return Problem(
        422, "Invalid request", f"{field}: {NUL_MESSAGE}", errors=[{"field": field, "message": NUL_MESSAGE}]
    )


async def refuse_nul(request: Request) -> None:
    """422 naming the path parameter, query parameter or JSON pointer that holds U+0000."""
    for name, value in request.path_params.items():
        if NUL in str(value):
            raise nul_problem(f"/path/{name}")
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise nul_problem(f"/query/{name}")
    pointer = body_nul_pointer(await request.body())
    if pointer is not None:
        raise nul_problem(pointer)
