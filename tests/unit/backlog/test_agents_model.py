"""The Erlang C staffing figure: its handle time is the agents' work per ticket, which the events
do not carry (every interval they give is calendar time: queueing, waits on the requester, other
tickets worked meanwhile), so it is configured, per team if need be; never a resolution time."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from services.metrics.backlog import BacklogConfig, BacklogState, agents_needed
from shared.events import EventType

from .helpers import at, envelope, make_state, scrape

H = 3600.0
DAY = 24 * H


def _feed(state: BacklogState, team: str) -> None:
    # Ten tickets that waited a day in the team's queue before one agent solved each in minutes.
    for i in range(10):
        st = make_state(f"{team}:old{i}", 0, team=team, routed=0, fr_due=H, res_due=2 * DAY)
        state.apply(envelope(st, 0, EventType.TICKET_ROUTED), at(0))
    for i in range(10):
        st = make_state(
            f"{team}:old{i}", 0, team=team, status="solved", routed=0, responded=DAY, resolved=DAY + 600
        )
        state.apply(envelope(st, DAY + 600), at(DAY + 600))
    # Twenty arrivals in the last hour, first-response target 1 h.
    for i in range(20):
        t = DAY + 600 + i * 60
        st = make_state(f"{team}:new{i}", t, team=team, routed=t, fr_due=t + H, res_due=t + DAY)
        state.apply(envelope(st, t, EventType.TICKET_ROUTED), at(t))


def test_agents_needed_uses_the_configured_handle_time_not_the_time_to_resolve() -> None:
    state = BacklogState(BacklogConfig(default_handle_seconds=1200))
    _feed(state, "sales")
    state.advance_clock(at(DAY + 600 + 20 * 60))
    summary = state.summary()["teams"]["sales"]
    assert summary["inflow_per_hour"] == 20
    # 20 tickets an hour of 20 min work each: 6.7 erlangs. A day's wait per ticket taken as
    # work (the old estimate) asked for some 500 agents.
    expected = agents_needed(20, 1200, H, 0.8)
    assert summary["agents_needed"] == expected < 12
    assert scrape(state)[("ticket_agents_needed", (("team", "sales"),))] == expected


def test_a_team_s_own_handle_time_overrides_the_default() -> None:
    config = BacklogConfig(default_handle_seconds=1200, team_handle_seconds=(("billing", 3600.0),))
    state = BacklogState(config)
    _feed(state, "sales")
    _feed(state, "billing")
    state.advance_clock(at(DAY + 600 + 20 * 60))
    teams = state.summary()["teams"]
    assert teams["sales"]["agents_needed"] == agents_needed(20, 1200, H, 0.8)
    assert teams["billing"]["agents_needed"] == agents_needed(20, 3600, H, 0.8)


def test_the_settings_handle_times_reach_the_service_s_forecast() -> None:
    from typing import Any, cast

    from services.metrics.app import ShardsCollector, backlog_config
    from shared.settings import MetricsSettings

    settings = MetricsSettings(metrics_handle_seconds=600, metrics_team_handle_seconds={"billing": 900})
    collector = ShardsCollector(cast(Any, None), backlog_config(settings))
    # The merged snapshot's configuration is the collector's: a shard restored from a checkpoint
    # written with other handle times does not bring them back.
    assert collector.config.handle_seconds("billing") == 900
    assert collector.config.handle_seconds("sales") == 600


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"METRICS_HANDLE_SECONDS": "inf"}, "metrics_handle_seconds"),
        ({"METRICS_HANDLE_SECONDS": "1e300"}, "metrics_handle_seconds"),
        ({"METRICS_TEAM_HANDLE_SECONDS": '{"billing": NaN}'}, "metrics_team_handle_seconds"),
        ({"METRICS_TEAM_HANDLE_SECONDS": '{"billing": Infinity}'}, "metrics_team_handle_seconds"),
        ({"METRICS_TEAM_HANDLE_SECONDS": '{"billing": 0}'}, "metrics_team_handle_seconds"),
        ({"METRICS_TEAM_HANDLE_SECONDS": '{"billing": -5}'}, "metrics_team_handle_seconds"),
    ],
)
def test_a_handle_time_that_is_not_a_positive_finite_duration_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str
) -> None:
    from shared.settings import MetricsSettings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Accepted, an infinite handle time made every scrape fail (math.floor of an infinite load) once
    # the team had arrivals, and before that exported ticket_agent_workload_erlangs NaN (0 x inf);
    # a NaN one passed the config's "positive" check; 0 or less failed only at start, naming nothing.
    with pytest.raises(ValidationError) as raised:
        MetricsSettings()
    assert raised.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("seconds", [math.inf, math.nan])
def test_the_backlog_config_refuses_a_handle_time_that_is_not_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="handle times"):
        BacklogConfig(default_handle_seconds=seconds)
    with pytest.raises(ValueError, match="handle times"):
        BacklogConfig(team_handle_seconds=(("billing", seconds),))
