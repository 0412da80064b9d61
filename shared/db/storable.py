"""What every database we support can store: PostgreSQL refuses U+0000 in text and in JSONB, and
no JSON column holds a lone UTF-16 surrogate (orjson refuses to write or read one back)."""

from __future__ import annotations

import re
from typing import Any

NUL = "\x00"
NUL_MESSAGE = "must not contain U+0000"
SURROGATE_MESSAGE = "must not contain a lone UTF-16 surrogate (U+D800-U+DFFF)"
_SURROGATES = re.compile("[\ud800-\udfff]")
# JSON holds U+0000 only as this escape (a raw control character is invalid JSON); a byte scan for
# it decides cheaply that a document has none.
ESCAPED_NUL = b"\\u0000"


def pointer_token(token: str) -> str:
    """A key as a JSON-pointer token (RFC 6901), a lone surrogate in it spelled as its escape
    (``\\ud800``, six characters): the pointer goes into a UTF-8 answer, which cannot hold it."""
    token = token.replace("~", "~0").replace("/", "~1")
    return _SURROGATES.sub(lambda found: f"\\u{ord(found.group()):04x}", token)


def _fault(text: str) -> str | None:
    if NUL in text:
        return NUL_MESSAGE
    return SURROGATE_MESSAGE if _SURROGATES.search(text) else None


def unstorable(value: Any) -> tuple[str, str] | None:
    """(JSON pointer, message) of the first string or object key in ``value`` (strings nested in
    dicts and lists, in document order) that holds U+0000 or a lone surrogate; None when none does.
    Walked with a stack of its own: a body nested a thousand levels deep is no RecursionError."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        pointer, item = stack.pop()
        if isinstance(item, str):
            message = _fault(item)
            if message is not None:
                return pointer or "/", message
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                member = f"{pointer}/{pointer_token(str(key))}"
                message = _fault(str(key))
                if message is not None:
                    return member, message
                children.append((member, child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{pointer}/{index}", child) for index, child in enumerate(item)]))
    return None


def replace_nul(value: Any) -> Any:
    """``value`` (strings nested in dicts and lists) with every U+0000 replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(NUL, "\ufffd")
    if isinstance(value, dict):
        return {replace_nul(key): replace_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_nul(item) for item in value]
    return value


def reject_nul(value: Any) -> None:
    """Raise ValueError when ``value`` holds U+0000 or a lone surrogate (see :func:`unstorable`):
    refused at validation, with the field named, rather than failing at the INSERT."""
    found = unstorable(value)
    if found is not None:
        raise ValueError(found[1])
