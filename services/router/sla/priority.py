"""Urgency x impact -> priority.

Levels are 1-4 with **4 the most severe** (matching ``shared.events.PRIORITY_ALIASES``, where
"4" means P1), or the words low/medium/high/critical.

The default matrix is ITIL-like: priority follows urgency + impact, symmetric in both::

    urgency \\ impact   low(1)  medium(2)  high(3)  critical(4)
    low(1)              P4      P4         P3       P2
    medium(2)           P4      P3         P2       P2
    high(3)             P3      P2         P2       P1
    critical(4)         P2      P2         P1       P1
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from shared.events import Priority


class Level(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


_LEVEL_WORDS = {level.name.lower(): level for level in Level} | {"med": Level.MEDIUM}


def parse_level(value: int | str | Level) -> Level:
    if isinstance(value, Level):
        return value
    text = str(value).strip().lower()
    if text in _LEVEL_WORDS:
        return _LEVEL_WORDS[text]
    try:
        return Level(int(text))
    except ValueError:
        raise ValueError(f"unknown level {value!r}; use 1-4 or low/medium/high/critical") from None


class PriorityMatrix(BaseModel):
    """``cells[urgency][impact] -> priority``; every one of the 16 combinations is required."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cells: dict[Level, dict[Level, Priority]]

    @field_validator("cells", mode="before")
    @classmethod
    def _parse_keys(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        out: dict[Level, Any] = {}
        for urgency, row in raw.items():
            row_out = {parse_level(impact): p for impact, p in row.items()} if isinstance(row, dict) else row
            out[parse_level(urgency)] = row_out
        return out

    @field_validator("cells")
    @classmethod
    def _complete(cls, cells: dict[Level, dict[Level, Priority]]) -> dict[Level, dict[Level, Priority]]:
        missing = [
            f"urgency={u.name.lower()}/impact={i.name.lower()}"
            for u in Level
            for i in Level
            if i not in cells.get(u, {})
        ]
        if missing:
            raise ValueError(f"priority matrix is incomplete, missing: {', '.join(missing)}")
        return cells

    def priority_for(self, urgency: int | str | Level, impact: int | str | Level) -> Priority:
        return self.cells[parse_level(urgency)][parse_level(impact)]


def _default_cells() -> dict[Level, dict[Level, Priority]]:
    by_sum = {2: Priority.P4, 3: Priority.P4, 4: Priority.P3, 5: Priority.P2, 6: Priority.P2}
    return {u: {i: by_sum.get(u + i, Priority.P1) for i in Level} for u in Level}


DEFAULT_MATRIX = PriorityMatrix(cells=_default_cells())


def priority_for(
    urgency: int | str | Level, impact: int | str | Level, matrix: PriorityMatrix = DEFAULT_MATRIX
) -> Priority:
    return matrix.priority_for(urgency, impact)
