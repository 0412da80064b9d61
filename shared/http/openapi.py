"""The problem+json schema every service declares for its error responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
