"""Refuse U+0000 anywhere in a request: PostgreSQL stores it neither in text nor in JSONB, so a NUL
that reached a query or an INSERT failed there (a 500) instead of being refused as bad input. So is
a lone UTF-16 surrogate (``"\\ud800"``): stored in a JSON column it could not be read back, and a
rule or policy holding one broke every later read of the configuration.

One app-wide dependency (``FastAPI(dependencies=[Depends(refuse_nul)])``) rather than a check in
every schema: it covers the JSON body, the query parameters and the path parameters of every
operation, those added later included. Except the probes and the exposition
(``PROBE_PATHS``): they read nothing of a request that could reach the database, and a probe or a
scraper adding a query of its own gets its answer, not a 422.
"""

from __future__ import annotations

import json
import re

import orjson
from fastapi import Request

from shared.db.storable import ESCAPED_NUL, NUL, NUL_MESSAGE, unstorable
from shared.http.health import PROBE_PATHS
from shared.http.problems import Problem

# Besides the escape (ESCAPED_NUL), a UTF-16/32 body may hold U+0000 anywhere: its ASCII
# characters all have zero bytes. A surrogate is only ever an escape in a JSON body (UTF-8 has none).
_ZERO_BYTE = b"\x00"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def body_unstorable(body: bytes) -> tuple[str, str] | None:
    """Where a JSON body holds U+0000 or a lone surrogate, and which (see ``unstorable``). The raw
    bytes only pre-filter: ``\\\\u0000`` is an escaped backslash followed by ``u0000``, not a NUL, and
    a surrogate pair is a character, so only the parsed value decides."""
    if ESCAPED_NUL not in body and _ZERO_BYTE not in body and not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # what FastAPI's parser also reads: UTF-16/32, NaN, numbers beyond a double, lone surrogates
            value = json.loads(body)
        except (ValueError, RecursionError):
            return None  # not JSON, or nested past what a parser takes: the operation refuses it
    return unstorable(value)


def nul_problem(field: str, message: str = NUL_MESSAGE) -> Problem:
    """The 422 for U+0000 (or another ``message``) at ``field`` (a JSON pointer, or /path/... and
    /query/...)."""
    return Problem(
        422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


async def refuse_nul(request: Request) -> None:
    """422 naming the path parameter, query parameter or JSON pointer that holds U+0000."""
    if request.scope["path"] in PROBE_PATHS:
        return
    for name, value in request.path_params.items():
        if NUL in str(value):
            raise nul_problem(f"/path/{name}")
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise nul_problem(f"/query/{name}")
    found = body_unstorable(await request.body())
    if found is not None:
        raise nul_problem(*found)
