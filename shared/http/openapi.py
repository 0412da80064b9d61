"""The problem+json schema every service declares for its error responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI

from shared.http.health import PROBE_PATHS
from shared.http.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def problem_responses(
    descriptions: Mapping[int, str],
    codes: tuple[int, ...],
    headers: Mapping[int, dict[str, Any]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``codes``, each a problem+json body with the service's wording."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {
            "description": descriptions[code],
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        if headers and code in headers:
            response["headers"] = headers[code]
        responses[code] = response
    return responses


# What the shared layer answers before any operation runs, for every operation taking a body.
_BODY_PROBLEMS = {
    413: "Body too large (over the service's body limit)",
    415: "Body is not JSON: send it with Content-Type: application/json",
}
# refuse_unknown_query's answer, for every operation under ``query_checked``.
_QUERY_PROBLEMS = {
    400: "A query parameter the operation does not take, or one given twice (errors name /query/<name>)"
}
_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"
# Any operation that reads the database or checks an API key (install_problem_handlers, KeyCache).
_UNAVAILABLE = {
    503: "The database is unavailable for the moment (a restart, a failover); retry after Retry-After"
}
_RETRY_AFTER = {503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}}


def document_problems(
    app: FastAPI,
    json_checked: tuple[str, ...] = (),
    query_checked: tuple[str, ...] = (),
) -> None:
    """Make ``app``'s OpenAPI document say what its errors are: problem+json, not FastAPI's default
    422 (``HTTPValidationError`` as application/json, which no response carries), the 413 of the
    body limit for every operation that takes a body, and the 415 of ``refuse_non_json_body`` for
    those under ``json_checked`` (path prefixes), the 400 of ``refuse_unknown_query`` for those under
    ``query_checked``, and the 503 (Retry-After) of a database away for a
    moment for every ``/v1/`` operation. Operations declaring these keep their wording.

    FastAPI declares a 422 for every operation with a parameter; the probes and the exposition
    (``PROBE_PATHS``) have none that a request can fail, and the app-wide guards pass them by
    (``refuse_nul``), so their 422 is left out."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; what follows changes nothing the second time
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                responses = operation.get("responses", {})
                if path in PROBE_PATHS:
                    responses.pop("422", None)
                for response in responses.values():
                    if _FASTAPI_VALIDATION in orjson.dumps(response.get("content", {})).decode():
                        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}
                if path.startswith("/v1/"):
                    for code, response in problem_responses(_UNAVAILABLE, (503,), _RETRY_AFTER).items():
                        responses.setdefault(str(code), response)
                if path.startswith(query_checked):
                    for code, response in problem_responses(_QUERY_PROBLEMS, (400,)).items():
                        responses.setdefault(str(code), response)
                if "requestBody" not in operation:
                    continue
                codes = (413, 415) if path.startswith(json_checked) else (413,)
                for code, response in problem_responses(_BODY_PROBLEMS, codes).items():
                    responses.setdefault(str(code), response)
        if _FASTAPI_VALIDATION not in orjson.dumps(schema.get("paths", {})).decode():
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
