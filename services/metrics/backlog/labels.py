"""String interning with a hard cap, so label values stay a bounded set."""

from __future__ import annotations

from collections.abc import Iterable

from .config import OTHER

MARK = "~"  # in front of a real name that would read as a reserved value (see intern_name)


class LabelInterner:
    """Maps label values to small ints. Reserved values come first (``reserved[0]`` gets id 0).

    Once ``cap`` values are known every new value maps to ``"other"``, which is always reserved.
    A real name is interned with :meth:`intern_name`, which keeps it apart from the reserved values.
    """

    __slots__ = ("_ids", "_reserved", "cap", "other_id", "values")

    def __init__(self, cap: int, reserved: Iterable[str] = ()) -> None:
        self.values: list[str] = []
        self._ids: dict[str, int] = {}
        for value in (*reserved, OTHER):
            if value not in self._ids:
                self._ids[value] = len(self.values)
                self.values.append(value)
        self._reserved = frozenset(self.values)
        if cap < len(self.values):
            raise ValueError("cap smaller than the reserved values")
        self.cap = cap
        self.other_id = self._ids[OTHER]

    def intern(self, value: str) -> int:
        found = self._ids.get(value)
        if found is not None:
            return found
        if len(self.values) >= self.cap:
            return self.other_id
        self._ids[value] = len(self.values)
        self.values.append(value)
        return self._ids[value]

    def intern_name(self, name: str) -> int:
        """:meth:`intern` of a real name (a team, a source), never one of the reserved values: a
        name equal to one, or starting with :data:`MARK`, is labelled with ``MARK`` put in front
        (a helpdesk group named "triage" is "~triage", not the triage queue). One-to-one, so no two
        names share a label either."""
        if name in self._reserved or name.startswith(MARK):
            name = MARK + name
        return self.intern(name)

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def restore(cls, cap: int, values: list[str], reserved: Iterable[str] = ()) -> LabelInterner:
        interner = cls(cap, reserved)
        interner.values = list(values)
        interner._ids = {v: i for i, v in enumerate(values)}
        interner.other_id = interner._ids[OTHER]
        return interner
