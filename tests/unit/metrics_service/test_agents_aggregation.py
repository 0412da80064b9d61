"""Staffing across metrics instances. Each instance's ``ticket_agents_needed`` is Erlang C for its
own partitions' share of a team's arrivals: summed over instances it counts each one's safety
margin and rounding (Erlang C is not additive), so the dashboard needs a series that does add up."""

from __future__ import annotations

import json
from pathlib import Path

from services.metrics.backlog import BacklogConfig, BacklogState, agents_needed
from shared.events import EventType
from tests.unit.backlog.helpers import at, envelope, make_state, scrape

H = 3600.0
DASHBOARD = Path(__file__).parents[3] / "deploy/grafana/dashboards/ticket-router.json"
TEAM = (("team", "sales"),)


def _instance(keys: range) -> BacklogState:
    state = BacklogState(BacklogConfig(default_handle_seconds=1200))
    for i in keys:
        st = make_state(
            f"z:{i}", i * 60, team="sales", routed=i * 60, fr_due=i * 60 + H, res_due=i * 60 + 8 * H
        )
        state.apply(envelope(st, i * 60, EventType.TICKET_ROUTED), at(i * 60))
    state.advance_clock(at(45 * 60))
    return state


def test_the_workload_adds_up_across_instances_and_the_agents_do_not() -> None:
    # Six tickets an hour for a team, its partitions spread over three instances.
    parts = [_instance(range(i, 6, 3)) for i in range(3)]
    pooled = _instance(range(6))
    assert agents_needed(6, 1200, H, 0.8) == 3
    assert scrape(pooled)[("ticket_agents_needed", TEAM)] == 3
    assert sum(scrape(s)[("ticket_agents_needed", TEAM)] for s in parts) == 6  # twice the team's
    # The agents busy full time (arrivals/h x handle time): exact when summed.
    workload = [scrape(s)[("ticket_agent_workload_erlangs", TEAM)] for s in parts]
    assert sum(workload) == scrape(pooled)[("ticket_agent_workload_erlangs", TEAM)] == 6 * 1200 / H


def test_the_dashboard_sums_the_workload_and_names_the_agents_sum_a_bound() -> None:
    board = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in board["panels"] if "agents needed" in p["title"].lower()]
    exprs = {t["expr"]: t.get("legendFormat", "") for t in panel["targets"]}
    assert 'sum by (team) (ticket_agent_workload_erlangs{team=~"$team"})' in exprs
    agents = [legend for expr, legend in exprs.items() if "ticket_agents_needed" in expr]
    assert agents and all("upper bound" in legend for legend in agents)
