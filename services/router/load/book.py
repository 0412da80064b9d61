"""The team loads one batch works with: prefetched (and locked), updated as the batch assigns.

Pure: :class:`LoadBook` knows nothing about the database. The handler builds it from
``team_load`` rows, lets :meth:`RoutingPolicy.route` choose from pools with it, records every
ticket's move between (team, status, priority) with :meth:`move`, and persists :attr:`deltas`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from services.router.assignment import AssignmentChoice, LoadConfig, Strategy, TeamLoad, choose_team
from services.router.rules import PoolTarget
from shared.events import Priority, TicketStatus

Position = tuple[str | None, TicketStatus, Priority]  # (team, status, priority) of a ticket
# The width of assignment_cursors.pool: a longer label (100 teams of up to 100 characters) is
# stored by its digest, or the cursor's upsert would fail every batch that assigns from the pool.
MAX_CURSOR_KEY = 1000


def cursor_key(pool: PoolTarget) -> str:
    """Where a round-robin pool's cursor is stored: its label, or a digest of a long one."""
    label = pool.label
    if len(label) <= MAX_CURSOR_KEY:
        return label
    return "pool-sha256:" + hashlib.sha256(label.encode()).hexdigest()


@dataclass
class LoadBook:
    config: LoadConfig
    capacities: Mapping[str, float]  # team -> capacity; unknown teams have none
    inactive: frozenset[str] = frozenset()
    counts: dict[str, int] = field(default_factory=dict)
    weighted: dict[str, float] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    overflow_team: str | None = None
    count_deltas: dict[str, int] = field(default_factory=dict)
    weight_deltas: dict[str, float] = field(default_factory=dict)
    cursor_updates: dict[str, str] = field(default_factory=dict)
    # Teams whose ``team_load`` row existed when the book was read (None: unknown, assume none).
    stored: frozenset[str] | None = None

    def load(self, team: str) -> TeamLoad:
        used = self.weighted.get(team, 0.0) if self.config.weighted else float(self.counts.get(team, 0))
        return TeamLoad(team, used, float(self.capacities.get(team, 0)), team not in self.inactive)

    def team_problem(self, team: str) -> str | None:
        """Why ``team`` cannot take tickets ("unknown": no ``teams`` row, "inactive"), or None."""
        if team not in self.capacities:
            return "unknown"
        return "inactive" if team in self.inactive else None

    def overflow_problem(self) -> str | None:
        """Why the overflow team cannot take tickets, or None. As a rule cannot name such a team,
        a full pool does not give it tickets that nobody would see."""
        return None if self.overflow_team is None else self.team_problem(self.overflow_team)

    def choose(self, pool: PoolTarget, ticket_key: str) -> AssignmentChoice:
        problem = self.overflow_problem()
        choice = choose_team(
            Strategy(pool.strategy),
            [self.load(t) for t in pool.teams],
            ticket_key=ticket_key,
            weights=pool.weights,
            last_assigned=self.cursors.get(cursor_key(pool)),
            overflow_team=None if problem else self.overflow_team,
        )
        if choice.team is None and problem:
            why = choice.reason.removesuffix("; no overflow team, to triage")
            choice = replace(
                choice, reason=f"{why}; overflow team {self.overflow_team} is {problem}; to triage"
            )
        if pool.strategy == Strategy.ROUND_ROBIN and choice.team in pool.teams:
            key = cursor_key(pool)
            self.cursors[key] = self.cursor_updates[key] = choice.team
        return choice

    def _add(self, position: Position | None, sign: int) -> None:
        if position is None:
            return
        team, status, priority = position
        if team is None or status not in self.config.counted_statuses:
            return
        weight = self.config.priority_weights.get(priority, 1.0)
        self.counts[team] = self.counts.get(team, 0) + sign
        self.weighted[team] = self.weighted.get(team, 0.0) + sign * weight
        self.count_deltas[team] = self.count_deltas.get(team, 0) + sign
        self.weight_deltas[team] = self.weight_deltas.get(team, 0.0) + sign * weight

    def move(self, old: Position | None, new: Position | None) -> None:
        """A ticket went from ``old`` to ``new`` (``None``: did not exist / gone)."""
        if old == new:
            return
        self._add(old, -1)
        self._add(new, +1)

    @property
    def touched(self) -> list[str]:
        return sorted(
            t
            for t in set(self.count_deltas) | set(self.weight_deltas)
            if self.count_deltas.get(t) or self.weight_deltas.get(t)
        )
