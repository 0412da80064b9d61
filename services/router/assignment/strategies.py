"""Pick a team from a pool. Pure and deterministic: same inputs, same team and reason.

A team has room when it is active, has capacity (someone on shift) and its weighted open load is
below capacity. When no team has room the ticket goes to the overflow team if one is configured,
otherwise to triage (``team=None``); ``reason`` always says why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from services.router.assignment.capacity import TeamLoad


class Strategy(StrEnum):
    LEAST_LOADED = "least_loaded"
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"


@dataclass(frozen=True, slots=True)
class Candidate:
    team: str
    ratio: float | None  # open_weighted / capacity; None without capacity
    has_room: bool
    note: str


@dataclass(frozen=True, slots=True)
class AssignmentChoice:
    team: str | None  # None: triage queue
    reason: str
    considered: list[Candidate] = field(default_factory=list)


def _consider(pool: Sequence[TeamLoad]) -> list[Candidate]:
    names = [t.team for t in pool]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate team in pool: {names}")
    out = []
    for t in pool:
        load = f"{t.open_weighted:g}/{t.capacity:g}"
        if not t.active:
            note = "inactive"
        elif t.capacity <= 0:
            note = "no capacity (nobody on shift)"
        else:
            note = f"{'room' if t.has_room else 'full'} ({load})"
        out.append(Candidate(t.team, t.ratio if t.capacity > 0 else None, t.has_room, note))
    return out


def _no_room(considered: list[Candidate], overflow_team: str | None, why: str) -> AssignmentChoice:
    if overflow_team:
        return AssignmentChoice(overflow_team, f"{why}; overflow to {overflow_team}", considered)
    return AssignmentChoice(None, f"{why}; no overflow team, to triage", considered)


def _why_none(considered: list[Candidate]) -> str:
    if not considered:
        return "empty team pool"
    details = ", ".join(f"{c.team}: {c.note}" for c in considered)
    return f"no team with room among {len(considered)} ({details})"


def least_loaded(pool: Sequence[TeamLoad], *, overflow_team: str | None = None) -> AssignmentChoice:
    """Lowest load/capacity ratio among teams with room; ties broken by team name."""
    considered = _consider(pool)
    eligible = [c for c in considered if c.has_room]
    if not eligible:
        return _no_room(considered, overflow_team, _why_none(considered))
    best = min(eligible, key=lambda c: (c.ratio, c.team))
    reason = f"least loaded: {best.team} at {best.ratio:.0%} of capacity"
    return AssignmentChoice(best.team, reason, considered)


def round_robin(
    pool: Sequence[TeamLoad], last_assigned: str | None = None, *, overflow_team: str | None = None
) -> AssignmentChoice:
    """The next team with room after ``last_assigned`` in pool order (the caller persists it).

    An unknown or missing ``last_assigned`` starts from the first team.
    """
    considered = _consider(pool)
    names = [c.team for c in considered]
    start = names.index(last_assigned) + 1 if last_assigned in names else 0
    for offset in range(len(considered)):
        candidate = considered[(start + offset) % len(considered)]
        if candidate.has_room:
            skipped = f", skipped {offset} without room" if offset else ""
            return AssignmentChoice(
                candidate.team,
                f"round robin after {last_assigned or '(start)'}: {candidate.team}{skipped}",
                considered,
            )
    return _no_room(considered, overflow_team, _why_none(considered))


def ticket_fraction(ticket_key: str) -> float:
    """A stable number in [0, 1) from the ticket key (unlike ``hash()``, same in every process)."""
    digest = hashlib.sha256(ticket_key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def weighted(
    pool: Sequence[TeamLoad],
    weights: Mapping[str, float],
    ticket_key: str,
    *,
    overflow_team: str | None = None,
) -> AssignmentChoice:
    """Pick among teams with room proportionally to ``weights`` (missing or <= 0: never picked).

    The draw is a hash of the ticket key, so re-routing the same ticket in the same state is
    reproducible; full teams are skipped and their share spread over the rest.
    """
    considered = _consider(pool)
    eligible = sorted(
        (c for c in considered if c.has_room and weights.get(c.team, 0.0) > 0), key=lambda c: c.team
    )
    if not eligible:
        has_room = any(c.has_room for c in considered)
        why = "no team with room has a positive weight" if has_room else _why_none(considered)
        return _no_room(considered, overflow_team, why)
    total = sum(weights[c.team] for c in eligible)
    draw = ticket_fraction(ticket_key) * total
    cumulative = 0.0
    chosen = eligible[-1]  # guards float rounding at the top end
    for c in eligible:
        cumulative += weights[c.team]
        if draw < cumulative:
            chosen = c
            break
    share = weights[chosen.team] / total
    reason = f"weighted: {chosen.team} (share {share:.0%} among {len(eligible)} teams with room)"
    return AssignmentChoice(chosen.team, reason, considered)


def choose_team(
    strategy: Strategy,
    pool: Sequence[TeamLoad],
    *,
    ticket_key: str,
    weights: Mapping[str, float] | None = None,
    last_assigned: str | None = None,
    overflow_team: str | None = None,
) -> AssignmentChoice:
    """Dispatch on a configured strategy name."""
    match Strategy(strategy):
        case Strategy.LEAST_LOADED:
            return least_loaded(pool, overflow_team=overflow_team)
        case Strategy.ROUND_ROBIN:
            return round_robin(pool, last_assigned, overflow_team=overflow_team)
        case Strategy.WEIGHTED:
            if weights is None:
                raise ValueError("the weighted strategy needs team weights")
            return weighted(pool, weights, ticket_key, overflow_team=overflow_team)
