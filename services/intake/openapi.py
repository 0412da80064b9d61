"""OpenAPI declarations of the problem+json error responses, so the schema tells the truth."""

from __future__ import annotations

from typing import Any

from shared.http.openapi import problem_responses

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


_RETRY_AFTER = {429: {"Retry-After": {"schema": {"type": "integer"}}}}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_responses(_DESCRIPTIONS, codes, _RETRY_AFTER)
