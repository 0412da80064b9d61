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
    412: "If-Match does not match the current ETag (given in the detail and the ETag header)",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid or unmappable input; `errors` names the field",
    428: "If-Match is required on this change (the current ETag is in the detail and the ETag header)",
    429: "Rate limited; see Retry-After",
    503: "Neither the broker nor the database could take the event; retry",
}

ETAG_HEADER: dict[str, Any] = {
    "ETag": {"description": "Send it back in If-Match to change this resource.", "schema": {"type": "string"}}
}
# The 412 and 428 problems name the current ETag in the header too.
_HEADERS: dict[int, dict[str, Any]] = {
    429: {"Retry-After": {"schema": {"type": "integer"}}},
    503: {"Retry-After": {"schema": {"type": "integer"}}},
    412: ETAG_HEADER,
    428: ETAG_HEADER,
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_responses(_DESCRIPTIONS, codes, _HEADERS)
