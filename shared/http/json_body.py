"""JSON request bodies: what counts as one, and a clear refusal of anything else.

FastAPI reads a body as JSON only with a JSON Content-Type; without one, or with another (curl's
``-d`` sends ``application/x-www-form-urlencoded``), it reached validation as raw bytes, answered
with "Input should be a valid dictionary" at ``/``, which says nothing of the header at fault.

An object that gives a key twice is refused too: the parser keeps the last, so a rule written with
``"when"`` twice lost its first condition without a word (``ticketctl`` refuses a repeated YAML key).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from shared.db.storable import pointer_token
from shared.http.problems import Problem

REPEATED_MESSAGE = "given twice in one object"

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


_UTF8_BOM = b"\xef\xbb\xbf"


def without_utf8_bom(body: bytes) -> bytes:
    """``body`` without a UTF-8 byte order mark before the JSON (Notepad, .NET and Windows
    PowerShell write one), which RFC 8259 lets a parser skip."""
    return body.removeprefix(_UTF8_BOM)


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


class _Members(list[tuple[str, Any]]):
    """A parsed JSON object as its members in order, repeats kept (``object_pairs_hook``)."""


def repeated_key(body: bytes) -> str | None:
    """The JSON pointer of the first key an object of ``body`` gives twice, in document order;
    None when none does, or when ``body`` is no JSON a parser takes (the operation answers that).
    Walked with a stack of its own: a body nested a thousand levels deep is no RecursionError."""
    try:
        document = json.loads(body, object_pairs_hook=_Members)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        pointer, item = stack.pop()
        if isinstance(item, _Members):
            seen: set[str] = set()
            children = []
            for key, child in item:
                member = f"{pointer}/{pointer_token(key)}"
                if key in seen:
                    return member
                seen.add(key)
                children.append((member, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{pointer}/{index}", child) for index, child in enumerate(item)]))
    return None


async def refuse_repeated_keys(request: Request) -> None:
    """422 naming the JSON pointer of a key given twice in one object of a JSON body."""
    if request.method not in BODY_METHODS or not is_json_media_type(request.headers.get("content-type")):
        return
    found = repeated_key(await request.body())
    if found is not None:
        raise Problem(
            422,
            "Invalid request",
            f"{found}: {REPEATED_MESSAGE}",
            errors=[{"field": found, "message": REPEATED_MESSAGE}],
        )
