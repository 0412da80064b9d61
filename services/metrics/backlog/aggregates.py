"""Small aggregate building blocks: sliding flow windows and fixed-bucket histograms."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any


class FlowWindow:
    """Per-team event counts in 1-minute buckets over the last ``minutes`` minutes (ring)."""

    __slots__ = ("_counts", "_marks", "minutes")

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self._counts: dict[int, list[int]] = {}
        self._marks: dict[int, list[int]] = {}

    def add(self, team: int, minute: int, now_minute: int) -> bool:
        """Count one event of ``team`` at ``minute``; False when it is older than the window."""
        if minute > now_minute:  # clock skew: count it now rather than in the future
            minute = now_minute
        if minute <= now_minute - self.minutes:
            return False
        counts = self._counts.get(team)
        if counts is None:
            counts = self._counts[team] = [0] * self.minutes
            self._marks[team] = [-1] * self.minutes
        marks = self._marks[team]
        r = minute % self.minutes
        if marks[r] == minute:
            counts[r] += 1
        elif marks[r] < minute:
            marks[r], counts[r] = minute, 1
        return True

    def remove(self, team: int, minute: int) -> None:
        """Take back one event :meth:`add` counted at ``minute`` (<= the clock's minute then)."""
        counts = self._counts.get(team)
        r = minute % self.minutes
        if counts is not None and self._marks[team][r] == minute and counts[r] > 0:
            counts[r] -= 1

    def count(self, team: int, now_minute: int) -> int:
        """Events of ``team`` within the window ending at ``now_minute``."""
        counts = self._counts.get(team)
        if counts is None:
            return 0
        oldest = now_minute - self.minutes
        return sum(c for c, m in zip(counts, self._marks[team], strict=True) if oldest < m <= now_minute)

    def per_hour(self, team: int, now_minute: int) -> float:
        return self.count(team, now_minute) * 60.0 / self.minutes

    def to_json(self) -> dict[str, Any]:
        return {str(t): [self._counts[t], self._marks[t]] for t in self._counts}

    @classmethod
    def from_json(cls, minutes: int, data: dict[str, Any]) -> FlowWindow:
        window = cls(minutes)
        for team, (counts, marks) in data.items():
            window._counts[int(team)] = list(counts)
            window._marks[int(team)] = list(marks)
        return window


class Histogram:
    """Disjoint bucket counts (last one is +Inf) and a sum; ``le`` semantics on export."""

    __slots__ = ("counts", "total")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * (n_buckets + 1)
        self.total = 0.0

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1
        self.total += value

    def cumulative(self, bounds: tuple[float, ...]) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*(repr(float(b)) for b in bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out

    def to_json(self) -> list[Any]:
        return [self.counts, self.total]

    @classmethod
    def from_json(cls, data: list[Any]) -> Histogram:
        hist = cls(len(data[0]) - 1)
        hist.counts, hist.total = list(data[0]), float(data[1])
        return hist
