"""``@frozen``: a dataclass the type checker holds read-only, built at a plain dataclass's speed.

``@dataclass(frozen=True)`` enforces immutability at run time by setting every field in
``__init__`` through ``object.__setattr__``: ~0.1 µs a field (1.5 µs for a 15-field outcome against
0.2 µs without), and the router builds about ten such values per ticket. ``@frozen`` makes a
``slots`` dataclass whose fields mypy (which ``make lint`` and CI run) refuses to assign, through
``dataclass_transform(frozen_default=True)``; it keeps the frozen dataclass's equality and hash.
Use it for values built on a hot path; ``@dataclass(frozen=True)`` stays right everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def frozen(cls: type[_T]) -> type[_T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
