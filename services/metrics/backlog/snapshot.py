"""A mergeable, per-team-name copy of the aggregates of one or more :class:`BacklogState`.

One metrics instance holds one state per partition (see ``services.metrics.ingest``); each
state interns team names on its own, so aggregates are merged by label value, never by id, and
the label caps are applied again to the union (:class:`LabelCaps`).
Counts, counters, histograms, flow counts and age sums add up; the oldest open ticket is the
minimum creation time; the derived forecast (hours to clear, Erlang C agents) is recomputed
from the merged inputs, never added, with the configuration of the merge (its handle times).
Taking a snapshot costs O(teams x label values).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .aggregates import Histogram
from .config import PRIORITIES, STATUSES, TRIAGE, BacklogConfig
from .erlang import agents_needed
from .labels import LabelInterner
from .transitions import oldest_created

if TYPE_CHECKING:
    from .state import BacklogState

NP, NS = len(PRIORITIES), len(STATUSES)
_agent_cache: dict[tuple[float, float, float, float, int], int] = {}


@dataclass
class TeamTotals:
    open: list[int]  # per priority
    overdue: list[int]
    at_risk: list[int]
    status: list[int]  # per status code
    age: list[int]  # disjoint age buckets, last = beyond the last edge
    age_sum_ms: int = 0  # sum of the open tickets' ages
    oldest_created_ms: int | None = None
    routed: int = 0
    resolved: int = 0
    reopened: int = 0
    escalated: int = 0
    breaches: list[int] = field(default_factory=lambda: [0, 0])  # first_response, resolution
    first_response: Histogram | None = None
    resolution: dict[int, Histogram] = field(default_factory=dict)  # by priority code
    inflow: int = 0  # transitions into the open set within the flow window
    outflow: int = 0
    target_sum: float = 0.0  # recent first-response targets (seconds)
    target_n: int = 0

    @classmethod
    def empty(cls, n_age_buckets: int) -> TeamTotals:
        return cls([0] * NP, [0] * NP, [0] * NP, [0] * NS, [0] * n_age_buckets)

    def add(self, other: TeamTotals) -> None:
        for mine, theirs in (
            (self.open, other.open),
            (self.overdue, other.overdue),
            (self.at_risk, other.at_risk),
            (self.status, other.status),
            (self.age, other.age),
            (self.breaches, other.breaches),
        ):
            for i, value in enumerate(theirs):
                mine[i] += value
        self.age_sum_ms += other.age_sum_ms
        if other.oldest_created_ms is not None and (
            self.oldest_created_ms is None or other.oldest_created_ms < self.oldest_created_ms
        ):
            self.oldest_created_ms = other.oldest_created_ms
        self.routed += other.routed
        self.resolved += other.resolved
        self.reopened += other.reopened
        self.escalated += other.escalated
        if other.first_response is not None:
            self.first_response = _add_hist(self.first_response, other.first_response)
        for prio, hist in other.resolution.items():
            self.resolution[prio] = _add_hist(self.resolution.get(prio), hist)
        self.inflow += other.inflow
        self.outflow += other.outflow
        self.target_sum += other.target_sum
        self.target_n += other.target_n

    @property
    def open_total(self) -> int:
        return sum(self.open)


@dataclass
class Snapshot:
    config: BacklogConfig
    now_ms: int
    teams: dict[str, TeamTotals]  # insertion order: triage first, then as first seen
    received: dict[str, int]  # by source
    time_to_route: Histogram
    # When it merges partitions: each one's snapshot by partition number, labels capped alike,
    # but those whose counters are withheld (below).
    partitions: list[tuple[int, Snapshot]] = field(default_factory=list)
    partitioned: bool = False  # counters and histograms come from ``partitions`` (maybe none)
    # False while a restored shard replays: its counters are behind what this instance exported
    # before a crash, and a lower value on the same series reads as a reset to Prometheus.
    counters_current: bool = True

    @property
    def n_open(self) -> int:
        return sum(t.open_total for t in self.teams.values())

    def oldest_age_seconds(self, team: TeamTotals) -> float:
        # Never negative: every open ticket may have been created ahead of the clock (clock skew).
        if team.oldest_created_ms is None:
            return 0.0
        return max(0, self.now_ms - team.oldest_created_ms) / 1000

    def forecast(self, name: str, team: TeamTotals) -> dict[str, float]:
        """Flow per hour over the sliding window, hours to clear the open backlog at the current
        outflow (+Inf if tickets are open and nothing flows out, 0 if none are open) and the
        Erlang C agents needed at the measured arrival rate, each ticket taking the configured
        handle time of team ``name`` (:meth:`BacklogConfig.handle_seconds`)."""
        cfg = self.config
        inflow = team.inflow * 60.0 / cfg.flow_window_minutes
        outflow = team.outflow * 60.0 / cfg.flow_window_minutes
        open_count = team.open_total
        hours = open_count / outflow if outflow > 0 else (0.0 if open_count == 0 else math.inf)
        handle = cfg.handle_seconds(name)
        agents = _agents_cached(
            inflow,
            handle,
            team.target_sum / team.target_n if team.target_n else cfg.default_answer_target_seconds,
            cfg.service_level_target,
            cfg.max_agents,
        )
        return {
            "inflow_per_hour": inflow,
            "outflow_per_hour": outflow,
            "net_flow_per_hour": inflow - outflow,
            "hours_to_clear": hours,
            "agents_needed": float(agents),
            # Offered load: agents kept busy full time. Unlike agents_needed (each instance's Erlang
            # C margin and rounding for its share), it adds up across instances.
            "agent_workload": inflow * handle / 3600.0,
        }


def take(state: BacklogState) -> Snapshot:
    """Copy the aggregates of ``state`` (the caller holds ``state.lock``)."""
    nb = state.nb
    now_minute = state.now_ms // 60_000
    teams: dict[str, TeamTotals] = {}
    for t, name in enumerate(state.teams.values):
        p, s, b = t * NP, t * NS, t * nb
        oldest = oldest_created(state, t)
        target = state.recent_target.get(t, ())
        fr = state.h_fr.get(t)
        res = {prio: _copy_hist(h) for prio in range(NP) if (h := state.h_res.get(p + prio)) is not None}
        totals = TeamTotals(
            open=state.g_open[p : p + NP],
            overdue=state.g_overdue[p : p + NP],
            at_risk=state.g_risk[p : p + NP],
            status=state.g_status[s : s + NS],
            age=state.g_age[b : b + nb],
            # Tickets created ahead of the clock add 0 (see BacklogState.unaged), not a negative age.
            age_sum_ms=(state.team_open(t) - state.n_unaged[t]) * state.now_ms
            - (state.s_created[t] - state.u_created[t]),
            oldest_created_ms=oldest,
            routed=state.c_routed[t],
            resolved=state.c_resolved[t],
            reopened=state.c_reopened[t],
            escalated=state.c_escalated[t],
            breaches=state.c_breach[t * 2 : t * 2 + 2],
            first_response=None if fr is None else _copy_hist(fr),
            resolution=res,
            inflow=state.inflow.count(t, now_minute),
            outflow=state.outflow.count(t, now_minute),
            target_sum=sum(target),
            target_n=len(target),
        )
        teams[name] = totals
    received = {name: state.c_received[i] for i, name in enumerate(state.sources.values)}
    return Snapshot(state.config, state.now_ms, teams, received, _copy_hist(state.h_ttr))


class LabelCaps:
    """The team and source caps of one merge. Each state caps its own labels, but together its
    states know more names: the first ``max_teams`` (``max_sources``) names in merge order keep
    theirs, later ones are counted as ``other``. Which names those are depends on the states
    merged, so counters are never merged with it (see :meth:`.BacklogCollector.snapshot`)."""

    def __init__(self, config: BacklogConfig) -> None:
        self.teams = LabelInterner(config.max_teams, (TRIAGE,))
        self.sources = LabelInterner(config.max_sources)

    def team(self, name: str) -> str:
        return self.teams.values[self.teams.intern(name)]

    def source(self, name: str) -> str:
        return self.sources.values[self.sources.intern(name)]


def merge(snapshots: Iterable[Snapshot], config: BacklogConfig) -> Snapshot:
    """Sum of ``snapshots`` by label value, within the label caps of ``config``; with none, an
    empty snapshot of ``config``. One snapshot keeps its labels: its state capped them alike."""
    caps = LabelCaps(config)
    nb = len(config.age_buckets_seconds) + 1
    out = Snapshot(config, 0, {}, {}, Histogram(len(config.time_to_route_buckets)))
    for snap in snapshots:
        out.now_ms = max(out.now_ms, snap.now_ms)
        for name, totals in snap.teams.items():
            name = caps.team(name)
            mine = out.teams.get(name)
            if mine is None:
                mine = out.teams[name] = TeamTotals.empty(nb)
            mine.add(totals)
        for source, count in snap.received.items():
            source = caps.source(source)
            out.received[source] = out.received.get(source, 0) + count
        out.time_to_route = _add_hist(out.time_to_route, snap.time_to_route)
    return out


def _copy_hist(hist: Histogram) -> Histogram:
    copy = Histogram(len(hist.counts) - 1)
    copy.counts, copy.total = list(hist.counts), hist.total
    return copy


def _add_hist(into: Histogram | None, other: Histogram) -> Histogram:
    if into is None:
        return _copy_hist(other)
    for i, count in enumerate(other.counts):
        into.counts[i] += count
    into.total += other.total
    return into


def _agents_cached(rate: float, handle: float, target: float, level: float, cap: int) -> int:
    # Every scrape recomputes every team; the inputs rarely change between scrapes.
    key = (rate, handle, target, level, cap)
    found = _agent_cache.get(key)
    if found is None:
        if len(_agent_cache) > 10_000:
            _agent_cache.clear()
        found = _agent_cache[key] = agents_needed(rate, handle, target, level, cap)
    return found
