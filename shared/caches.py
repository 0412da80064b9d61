"""Bounding the services' lookup caches (API keys, webhook sources) against scans of random names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def make_room(entries: dict[K, V], limit: int, worth_keeping: Callable[[V], bool]) -> None:
    """Before an entry is added to ``entries``: when it holds ``limit`` or more, drop those not
    worth keeping (answers for unknown keys or names, what a flood of random ones fills a cache
    with), and everything only when that leaves it still full. Clearing it all at once made every
    valid caller pay a database read again after each 10,000 random requests."""
    if len(entries) < limit:
        return
    for key in [key for key, entry in entries.items() if not worth_keeping(entry)]:
        del entries[key]
    if len(entries) >= limit:
        entries.clear()
