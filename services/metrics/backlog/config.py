"""Tunables of the live backlog state, and the fixed label vocabularies."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

# Fixed, bounded label sets. Codes are indexes into these tuples and are stored per ticket.
PRIORITIES: tuple[str, ...] = ("P1", "P2", "P3", "P4")
STATUSES: tuple[str, ...] = ("new", "open", "pending", "on_hold", "solved", "closed")
FIRST_RESOLVED_STATUS = 4  # codes >= this are resolved (solved, closed)
BREACH_KINDS: tuple[str, ...] = ("first_response", "resolution")

TRIAGE = "triage"  # team label of tickets with no team (the triage queue)
OTHER = "other"  # label value for everything beyond a label cap
NO_CATEGORY = "none"


@dataclass(frozen=True)
class BacklogConfig:
    # Disjoint age buckets by upper bound (seconds); exposed cumulatively with a final +Inf.
    age_buckets_seconds: tuple[float, ...] = (3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600, 168 * 3600)
    # A ticket is "at risk" from the router's resolution warning instant until it is overdue; for
    # states without that instant (older routers), once this share of created_at -> resolution_due.
    warning_share: float = 0.75
    # Label caps: at most this many distinct values per label (reserved values included); the
    # rest is reported as "other" so a misbehaving source cannot blow up series cardinality.
    max_teams: int = 500
    max_sources: int = 500
    max_categories: int = 500
    # Duplicate-delivery protection: the last N event ids are remembered (and checkpointed).
    seen_event_ids: int = 200_000
    # Resolved tickets are kept (compactly) so a later reopen or late update is recognised as a
    # transition; the oldest beyond this many are forgotten.
    resolved_retention: int = 200_000
    flow_window_minutes: int = 60
    # Erlang C inputs. Handle time: the agents' work per ticket, configured (per team by name, else
    # the default), never measured: the events carry calendar instants only (created, routed, first
    # reply, resolved), and every interval between them includes queueing, waits on the requester
    # and other tickets worked meanwhile (a ticket a day in the queue is not a day of work).
    # Answer target = mean first-response target of the team's last N routed tickets (else the
    # default): the wait Erlang C bounds, from entering the team's queue to an agent taking it.
    recent_samples: int = 100
    default_handle_seconds: float = 1200
    team_handle_seconds: tuple[tuple[str, float], ...] = ()
    default_answer_target_seconds: float = 3600
    service_level_target: float = 0.8
    max_agents: int = 100_000
    time_to_route_buckets: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
    first_response_buckets: tuple[float, ...] = (
        300,
        900,
        1800,
        3600,
        2 * 3600,
        4 * 3600,
        8 * 3600,
        24 * 3600,
        72 * 3600,
    )
    resolution_buckets: tuple[float, ...] = (
        3600,
        4 * 3600,
        8 * 3600,
        24 * 3600,
        72 * 3600,
        168 * 3600,
        336 * 3600,
        720 * 3600,
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.warning_share <= 1.0:
            raise ValueError("warning_share must be in (0, 1]")
        if list(self.age_buckets_seconds) != sorted(set(self.age_buckets_seconds)):
            raise ValueError("age_buckets_seconds must be strictly increasing")
        if min(self.max_teams, self.max_sources, self.max_categories) < 3:
            raise ValueError("label caps must leave room for the reserved values")
        handles = (self.default_handle_seconds, *(s for _, s in self.team_handle_seconds))
        if not all(0 < s < math.inf for s in handles):  # NaN fails too: an inf or NaN load fails a scrape
            raise ValueError("handle times must be positive and finite")

    def handle_seconds(self, team: str) -> float:
        """The configured agent work per ticket of ``team`` (see ``team_handle_seconds``)."""
        for name, seconds in self.team_handle_seconds:
            if name == team:
                return seconds
        return self.default_handle_seconds

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacklogConfig:
        known = {f.name for f in fields(cls)}
        # JSON has lists only: back to (nested) tuples, so the frozen config stays hashable.
        values = {k: _tuples(v) for k, v in data.items() if k in known}
        return cls(**values)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
