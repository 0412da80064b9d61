"""OpenAPI declarations of the problem+json error responses, so the schema tells the truth."""

from __future__ import annotations

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

_DESCRIPTIONS = {
    400: "Malformed body",
    401: "Missing or invalid credentials or signature",
    403: "The API key lacks the required role",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid or unmappable input; `errors` names the field",
    429: "Rate limited; see Retry-After",
    503: "Neither the broker nor the database could take the event; retry",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        response: dict[str, Any] = {
            "description": _DESCRIPTIONS[code],
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        if code == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[code] = response
    return responses
