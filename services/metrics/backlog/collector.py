"""Prometheus exposition of a :class:`BacklogState` as a custom collector.

Every family is read from aggregates the state maintains incrementally, so ``collect()`` costs
O(teams x label values), independent of the number of open tickets. Series exist for every team
label value seen so far (zeros included) so dashboards do not see series appear and vanish.

``ticket_open_age_bucket{team,le}`` is cumulative like a histogram: ``le="3600.0"`` counts open
tickets aged at most one hour, ``le="+Inf"`` all open tickets of the team.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.events import utc_now

from .config import BREACH_KINDS, PRIORITIES, STATUSES
from .state import NP, NS, BacklogState


class BacklogCollector(Collector):
    def __init__(self, state: BacklogState, clock: Callable[[], datetime] | None = utc_now) -> None:
        """``clock``: advance the state's clock to it before each scrape (None: leave as fed)."""
        self.state = state
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering does not run a full collect().
        yield from self._families(with_samples=False)

    def collect(self) -> Iterator[Metric]:
        with self.state.lock:
            if self.clock is not None:
                self.state.advance_clock(self.clock())
            families = list(self._families(with_samples=True))
        yield from families

    def _families(self, with_samples: bool) -> Iterator[Metric]:
        st = self.state
        cfg = st.config
        teams = st.teams.values if with_samples else []
        sources = st.sources.values if with_samples else []

        def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=labels)

        g_open = gauge("ticket_backlog_open", "Open tickets (team 'triage' = unassigned).",
                       ["team", "priority"])
        g_overdue = gauge("ticket_backlog_overdue", "Open tickets past their resolution due time.",
                          ["team", "priority"])
        g_risk = gauge("ticket_sla_at_risk", "Open tickets past the warning share of their resolution "
                       "target, not yet overdue.", ["team", "priority"])
        for t, team in enumerate(teams):
            for p, prio in enumerate(PRIORITIES):
                i = t * NP + p
                g_open.add_metric([team, prio], st.g_open[i])
                g_overdue.add_metric([team, prio], st.g_overdue[i])
                g_risk.add_metric([team, prio], st.g_risk[i])
        yield from (g_open, g_overdue, g_risk)

        g_status = gauge("ticket_open_by_status", "Open tickets by normalised status.", ["team", "status"])
        g_age = gauge("ticket_open_age_bucket", "Open tickets with age <= le seconds (cumulative).",
                      ["team", "le"])
        g_oldest = gauge("ticket_oldest_open_age_seconds", "Age of the oldest open ticket (0 if none).",
                         ["team"])
        bounds = [repr(float(b)) for b in cfg.age_buckets_seconds] + ["+Inf"]
        for t, team in enumerate(teams):
            for s, status in enumerate(STATUSES[:4]):  # resolved statuses are never open
                g_status.add_metric([team, status], st.g_status[t * NS + s])
            running = 0
            for b, bound in enumerate(bounds):
                running += st.g_age[t * st.nb + b]
                g_age.add_metric([team, bound], running)
            oldest = st.oldest_created(t)
            g_oldest.add_metric([team], 0.0 if oldest is None else (st.now_ms - oldest) / 1000)
        g_triage = gauge("ticket_triage_open", "Open tickets in the triage queue (no team).", [])
        if with_samples:
            g_triage.add_metric([], st.team_open(0))
        yield from (g_status, g_age, g_oldest, g_triage)

        c_received = counter("tickets_received", "Tickets received by intake.", ["source"])
        for s, source in enumerate(sources):
            c_received.add_metric([source], st.c_received[s])
        per_team: list[CounterMetricFamily] = [
            counter("tickets_routed", "Routings of an open ticket to a (new) team.", ["team"]),
            counter("tickets_resolved", "Open -> solved/closed transitions.", ["team"]),
            counter("tickets_reopened", "Solved/closed -> open transitions.", ["team"]),
            counter("tickets_escalated", "Escalation events and priority raises.", ["team"]),
        ]
        sources_of = (st.c_routed, st.c_resolved, st.c_reopened, st.c_escalated)
        c_breach = counter("sla_breaches", "SLA breaches, once per ticket, kind and deadline.",
                           ["team", "kind"])
        for t, team in enumerate(teams):
            for family, values in zip(per_team, sources_of, strict=True):
                family.add_metric([team], values[t])
            for k, kind in enumerate(BREACH_KINDS):
                c_breach.add_metric([team, kind], st.c_breach[t * 2 + k])
        yield from (c_received, *per_team, c_breach)

        h_ttr = HistogramMetricFamily("ticket_time_to_route_seconds", "Creation to first team assignment.",
                                      labels=[])
        if with_samples:
            h_ttr.add_metric([], st.h_ttr.cumulative(cfg.time_to_route_buckets), st.h_ttr.total)
        h_fr = HistogramMetricFamily("ticket_first_response_seconds", "Creation to first agent response.",
                                     labels=["team"])
        h_res = HistogramMetricFamily("ticket_resolution_seconds", "Creation to resolution.",
                                      labels=["team", "priority"])
        if with_samples:
            for t, hist in sorted(st.h_fr.items()):
                h_fr.add_metric([teams[t]], hist.cumulative(cfg.first_response_buckets), hist.total)
            for key, hist in sorted(st.h_res.items()):
                labels = [teams[key // NP], PRIORITIES[key % NP]]
                h_res.add_metric(labels, hist.cumulative(cfg.resolution_buckets), hist.total)
        yield from (h_ttr, h_fr, h_res)

        names = ("inflow_per_hour", "outflow_per_hour", "net_flow_per_hour", "hours_to_clear",
                 "agents_needed")
        docs = (
            "Tickets entering the team's open set per hour (sliding window).",
            "Tickets leaving the team's open set (resolved or moved) per hour (sliding window).",
            "Inflow minus outflow per hour.",
            "Open backlog / outflow per hour; +Inf when open > 0 and nothing flows out.",
            "Erlang C agents for the service-level target at the measured arrival rate.",
        )
        prefixed = [f"ticket_backlog_{n}" if n == "hours_to_clear" else f"ticket_{n}" for n in names]
        flows = [gauge(n, d, ["team"]) for n, d in zip(prefixed, docs, strict=True)]
        for t, team in enumerate(teams):
            forecast = st.forecast(t)
            for flow, name in zip(flows, names, strict=True):
                flow.add_metric([team], forecast[name])
        yield from flows
