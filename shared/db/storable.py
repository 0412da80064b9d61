"""What every database we support can store: PostgreSQL refuses U+0000 in text and in JSONB."""

from __future__ import annotations

from typing import Any

NUL = "\x00"
NUL_MESSAGE = "must not contain U+0000"
# JSON holds U+0000 only as this escape (a raw control character is invalid JSON); a byte scan for
# it decides cheaply that a document has none.
ESCAPED_NUL = b"\\u0000"


def _escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def nul_pointer(value: Any, pointer: str = "") -> str | None:
    """The JSON pointer of the first string or object key in ``value`` (strings nested in dicts
    and lists) that holds U+0000; None when none does."""
    if isinstance(value, str):
        return (pointer or "/") if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            member = f"{pointer}/{_escape_pointer_token(str(key))}"
            if NUL in str(key):
                return member
            found = nul_pointer(item, member)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_pointer(item, f"{pointer}/{index}")
            if found is not None:
                return found
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
    """Raise ValueError when ``value`` holds U+0000 (see :func:`nul_pointer`): refused at
    validation, with the field named, rather than failing at the INSERT."""
    if nul_pointer(value) is not None:
        raise ValueError(NUL_MESSAGE)
