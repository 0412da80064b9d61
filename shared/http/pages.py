"""Keyset pages: a full page's ``Link: <...>; rel="next"`` header (RFC 8288) asks for the rows
past its last one, with the request's other query parameters kept."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request, Response


def link_next(request: Request, response: Response, cursor: str, value: int | str) -> None:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != cursor]
    query = urlencode([*params, (cursor, str(value))])
    response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'


def next_link_header(example: str) -> dict[str, dict[str, object]]:
    """The ``Link`` header as OpenAPI documents a response's headers."""
    return {
        "Link": {
            "description": f'On a full page: `<{example}>; rel="next"`, the next page.',
            "schema": {"type": "string"},
        }
    }
