"""JSON request bodies: what counts as one, and a clear refusal of anything else.

FastAPI reads a body as JSON only with a JSON Content-Type; without one, or with another (curl's
``-d`` sends ``application/x-www-form-urlencoded``), it reached validation as raw bytes, answered
with "Input should be a valid dictionary" at ``/``, which says nothing of the header at fault.
"""

from __future__ import annotations

from fastapi import Request

from shared.http.problems import Problem

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def refuse_non_json_body(request: Request) -> None:
    """415 naming the header, for a body sent without a JSON Content-Type."""
    content_type = request.headers.get("content-type")
    if request.method not in BODY_METHODS or is_json_media_type(content_type):
        return
    if not await request.body():
        return  # nothing to read (POST .../retry, .../activate)
    media = (content_type or "").split(";", 1)[0].strip()
    said = f"it says {media!r}" if media else "none given"
    message = f"send the body with Content-Type: application/json ({said})"
    raise Problem(
        415, "Unsupported media type", message, errors=[{"field": "/header/content-type", "message": message}]
    )
