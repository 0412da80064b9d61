"""OpenAPI declarations of the router's problem+json error responses and ETag headers."""

from __future__ import annotations

from typing import Any

from shared.http.openapi import problem_responses

_DESCRIPTIONS = {
    400: "Malformed request body (not JSON)",
    401: "Missing, unknown or revoked API key",
    403: "The API key lacks the required role",
    404: "Not found",
    409: "Conflict (e.g. the team is referenced by the live rules, or a concurrent change)",
    412: "If-Match does not match the current ETag (given in the detail and the ETag header)",
    422: "Invalid input; `errors[].field` is a JSON pointer to the culprit",
    428: "If-Match is required on this mutation",
}

ETAG_HEADER = {
    "ETag": {"description": "Send it back in If-Match to change this resource.", "schema": {"type": "string"}}
}
READ = (400, 401, 403, 422)
WRITE = (400, 401, 403, 409, 412, 422, 428)


# The 412 and 428 problems name the current ETag in the header too.
_HEADERS = {412: ETAG_HEADER, 428: ETAG_HEADER}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return problem_responses(_DESCRIPTIONS, codes, _HEADERS)
