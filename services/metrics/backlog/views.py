"""Derived per-team views: flow rates, forecast (hours to clear, Erlang C staffing), summary."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .config import PRIORITIES
from .erlang import agents_needed

if TYPE_CHECKING:
    from .state import BacklogState

_NP = len(PRIORITIES)
_agent_cache: dict[tuple[float, float, float, float, int], int] = {}


def _agents_cached(rate: float, handle: float, target: float, level: float, cap: int) -> int:
    # Every scrape recomputes every team; the inputs rarely change between scrapes.
    key = (rate, handle, target, level, cap)
    found = _agent_cache.get(key)
    if found is None:
        if len(_agent_cache) > 10_000:
            _agent_cache.clear()
        found = _agent_cache[key] = agents_needed(rate, handle, target, level, cap)
    return found


def forecast(state: BacklogState, team: int) -> dict[str, float]:
    """Inflow/outflow per hour over the sliding window, hours to clear the open backlog at the
    current outflow (+Inf if tickets are open and nothing flows out, 0 if none are open) and the
    Erlang C agents needed at the measured arrival rate."""
    cfg = state.config
    now_minute = state.now_ms // 60_000
    inflow = state.inflow.per_hour(team, now_minute)
    outflow = state.outflow.per_hour(team, now_minute)
    open_count = state.team_open(team)
    hours = open_count / outflow if outflow > 0 else (0.0 if open_count == 0 else math.inf)
    handle = state.recent_handle.get(team)
    target = state.recent_target.get(team)
    agents = _agents_cached(
        inflow,
        sum(handle) / len(handle) if handle else cfg.default_handle_seconds,
        sum(target) / len(target) if target else cfg.default_answer_target_seconds,
        cfg.service_level_target,
        cfg.max_agents,
    )
    return {"inflow_per_hour": inflow, "outflow_per_hour": outflow, "net_flow_per_hour": inflow - outflow,
            "hours_to_clear": hours, "agents_needed": float(agents)}


def summary(state: BacklogState) -> dict[str, Any]:
    """Per-team JSON summary; an infinite ``hours_to_clear`` becomes null (JSON has no Inf)."""
    teams: dict[str, Any] = {}
    for team, name in enumerate(state.teams.values):
        base = team * _NP
        oldest = state.oldest_created(team)
        flow = forecast(state, team)
        hours = flow["hours_to_clear"]
        teams[name] = {
            "open": state.team_open(team),
            "overdue": sum(state.g_overdue[base : base + _NP]),
            "at_risk": sum(state.g_risk[base : base + _NP]),
            "oldest_age_seconds": 0.0 if oldest is None else (state.now_ms - oldest) / 1000,
            "by_priority": {p: state.g_open[base + i] for i, p in enumerate(PRIORITIES)},
            "inflow_per_hour": flow["inflow_per_hour"],
            "outflow_per_hour": flow["outflow_per_hour"],
            "hours_to_clear": None if math.isinf(hours) else hours,
            "agents_needed": int(flow["agents_needed"]),
        }
    return {
        "as_of": datetime.fromtimestamp(state.now_ms / 1000, UTC).isoformat(),
        "open": state.n_open,
        "triage_open": state.team_open(0),
        "teams": teams,
    }
