"""What every database we support can store: PostgreSQL refuses U+0000 in text and in JSONB."""

from __future__ import annotations

from typing import Any


def reject_nul(value: Any) -> None:
    """Raise ValueError when ``value`` (a string, or strings nested in dicts and lists) holds
    U+0000: refused at validation, with the field named, rather than failing at the INSERT."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain U+0000")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key)
            reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item)
