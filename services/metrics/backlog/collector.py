"""Prometheus exposition of a :class:`BacklogState` as a custom collector.

Every family is read from aggregates the state maintains incrementally, so ``collect()`` costs
O(teams x label values), independent of the number of open tickets. Series exist for every team
label value seen so far (zeros included) so dashboards do not see series appear and vanish.

``ticket_open_age`` is a gauge histogram (exposed as ``histogram`` in the text format):
``ticket_open_age_bucket{team,le}`` is cumulative, ``le="3600.0"`` counts open tickets aged at
most one hour, ``le="+Inf"`` all open tickets of the team; ``ticket_open_age_gcount`` is that
count and ``ticket_open_age_gsum`` the sum of their ages in seconds.

A collector may expose several states (one per partition): their snapshots are merged by label
value (:func:`.snapshot.merge`), so one instance exports the union of its partitions. When they
are partitions (:meth:`BacklogCollector.snapshots` names them), the counters and histograms are
exported per partition (label ``partition``): they travel with their partition between instances,
and only then is a moved partition a new series on its new owner rather than a counter reset.
Their ``team`` and ``source`` values are the partition's own (each state caps its labels, in the
order it first saw them, and checkpoints that choice), so a series' count never depends on the
other partitions the instance owns; the gauges are capped again for the union (:class:`LabelCaps`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from shared.events import utc_now

from .config import BREACH_KINDS, PRIORITIES, STATUSES, TRIAGE, BacklogConfig
from .snapshot import Snapshot, merge
from .state import BacklogState

# A state's partition number, None when the states exposed are not partitions.
Part = tuple[int | None, Snapshot]


class BacklogCollector(Collector):
    # How long the snapshot of a collect() stays on offer to the FlowCollector (see handoff()).
    handoff_seconds = 1.0

    def __init__(
        self,
        state: BacklogState,
        clock: Callable[[], datetime] | None = utc_now,
        *,
        include_flows: bool = True,
    ) -> None:
        """``clock``: advance the state's clock to it before each scrape (None: leave as fed).
        ``include_flows``: also the flow and staffing families (False when a :class:`FlowCollector`
        exposes them)."""
        self.state = state
        self.clock = clock
        self.include_flows = include_flows
        self._handoff = threading.local()

    def states(self) -> list[BacklogState]:
        """The states exposed together; subclasses expose one per owned partition."""
        return [self.state]

    @property
    def config(self) -> BacklogConfig:
        return self.state.config

    def snapshots(self) -> list[Part]:
        """The aggregates of each of :meth:`states`, taken under its own lock, unpartitioned;
        subclasses exposing partitions name them."""
        now = self.clock() if self.clock is not None else None
        snaps: list[Part] = []
        for state in self.states():
            with state.lock:
                if now is not None:
                    state.advance_clock(now)
                snaps.append((None, state.snapshot()))
        return snaps

    def snapshot(self) -> Snapshot:
        """The merged aggregates of :meth:`snapshots`, with those of each named partition."""
        parts = self.snapshots()
        snap = merge((s for _, s in parts), self.config)
        snap.partitioned = any(p is not None for p, _ in parts)
        # Each partition's counters keep the labels its own state chose (its cap, checkpointed with
        # it), never the instance's: capped with the union, a series' count would depend on which
        # other partitions the instance owns, and fall when one is revoked (a reset to Prometheus).
        snap.partitions = [
            (p, merge([s], self.config)) for p, s in parts if p is not None and s.counters_current
        ]
        return snap

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering does not run a full collect().
        yield from render(None, self.config, flows=self.include_flows)

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        if not self.include_flows:
            self._handoff.taken = (snap, time.monotonic())
        yield from list(render(snap, self.config, flows=self.include_flows))

    def handoff(self) -> Snapshot | None:
        """The snapshot the last :meth:`collect` of this thread rendered, once, if still fresh.

        One exposition calls the registered collectors one after another in the scrape's thread,
        this one before its :class:`FlowCollector` (registered after it), so the flows describe the
        same instant as the gauges and the snapshot is taken once. Concurrent scrapes run in other
        threads, hence a thread-local slot. Taken at most once and only within ``handoff_seconds``:
        a scrape can leave it behind (a ``name[]=`` filter without the flow families, or a
        restricted registry, which calls its collectors in set order, reaching the FlowCollector
        first), and a later scrape's flows must not be older than that.
        """
        taken = getattr(self._handoff, "taken", None)
        self._handoff.taken = None
        if taken is None or time.monotonic() - taken[1] >= self.handoff_seconds:
            return None
        return taken[0]


class FlowCollector(Collector):
    """The flow and staffing families of a :class:`BacklogCollector`, as a collector of their own.

    The Erlang C staffing figure is the costly part of a scrape (a search over agent counts per
    team). Registered apart, it is computed only by scrapes that ask for these families: a
    ``name[]=`` scrape of a counter (alerts, the end-to-end bench's probe) skips it. In a full
    scrape it renders the snapshot its source just took (:meth:`BacklogCollector.handoff`).
    """

    def __init__(self, source: BacklogCollector) -> None:
        self.source = source

    def describe(self) -> Iterator[Metric]:
        yield from render_flows(None, self.source.config)

    def collect(self) -> Iterator[Metric]:
        snap = self.source.handoff()
        if snap is None:  # not preceded by its source in this scrape (see handoff)
            snap = self.source.snapshot()
        yield from list(render_flows(snap, self.source.config))


def render(snap: Snapshot | None, cfg: BacklogConfig, *, flows: bool = True) -> Iterator[Metric]:
    """The metric families of ``snap`` (None: the families without samples); ``flows``: with
    those of :func:`render_flows`. Counters and histograms are those of ``snap.partitions``, with
    a ``partition`` label, when it is partitioned."""
    teams = list(snap.teams.items()) if snap is not None else []
    by_part: list[tuple[list[str], Snapshot]] = [] if snap is None else [([], snap)]
    part_label: list[str] = []
    if snap is not None and snap.partitioned:
        by_part = [([str(p)], part_snap) for p, part_snap in snap.partitions]
        part_label = ["partition"]

    def gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=labels)

    def counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=labels)

    g_open = gauge("ticket_backlog_open", "Open tickets (team 'triage' = unassigned).", ["team", "priority"])
    g_overdue = gauge(
        "ticket_backlog_overdue", "Open tickets past their resolution due time.", ["team", "priority"]
    )
    g_risk = gauge(
        "ticket_sla_at_risk",
        "Open tickets past the router's resolution warning instant (else the warning share of the "
        "target), not paused, not yet overdue.",
        ["team", "priority"],
    )
    for team, t in teams:
        for p, prio in enumerate(PRIORITIES):
            g_open.add_metric([team, prio], t.open[p])
            g_overdue.add_metric([team, prio], t.overdue[p])
            g_risk.add_metric([team, prio], t.at_risk[p])
    yield from (g_open, g_overdue, g_risk)

    g_status = gauge("ticket_open_by_status", "Open tickets by normalised status.", ["team", "status"])
    g_age = GaugeHistogramMetricFamily(
        "ticket_open_age",
        "Open tickets by age in seconds (cumulative buckets; gsum = sum of ages).",
        labels=["team"],
    )
    g_oldest = gauge("ticket_oldest_open_age_seconds", "Age of the oldest open ticket (0 if none).", ["team"])
    bounds = [repr(float(b)) for b in cfg.age_buckets_seconds] + ["+Inf"]
    for team, t in teams:
        for s, status in enumerate(STATUSES[:4]):  # resolved statuses are never open
            g_status.add_metric([team, status], t.status[s])
        running, buckets = 0, []
        for bound, count in zip(bounds, t.age, strict=True):
            running += count
            buckets.append((bound, float(running)))
        g_age.add_metric([team], buckets, gsum_value=t.age_sum_ms / 1000)
        assert snap is not None
        g_oldest.add_metric([team], snap.oldest_age_seconds(t))
    g_triage = gauge("ticket_triage_open", "Open tickets in the triage queue (no team).", [])
    if snap is not None:
        triage = snap.teams.get(TRIAGE)
        g_triage.add_metric([], 0 if triage is None else triage.open_total)
    yield from (g_status, g_age, g_oldest, g_triage)

    c_received = counter("tickets_received", "Tickets received by intake.", ["source", *part_label])
    per_team: list[CounterMetricFamily] = [
        counter("tickets_routed", "Routings of an open ticket to a (new) team.", ["team", *part_label]),
        counter("tickets_resolved", "Open -> solved/closed transitions.", ["team", *part_label]),
        counter("tickets_reopened", "Solved/closed -> open transitions.", ["team", *part_label]),
        counter("tickets_escalated", "Escalation events and priority raises.", ["team", *part_label]),
    ]
    c_breach = counter(
        "sla_breaches", "SLA breaches, once per ticket, kind and deadline.", ["team", "kind", *part_label]
    )
    for part, part_snap in by_part:
        for source, count in part_snap.received.items():
            c_received.add_metric([source, *part], count)
        for team, t in part_snap.teams.items():
            values = (t.routed, t.resolved, t.reopened, t.escalated)
            for family, value in zip(per_team, values, strict=True):
                family.add_metric([team, *part], value)
            for k, kind in enumerate(BREACH_KINDS):
                c_breach.add_metric([team, kind, *part], t.breaches[k])
    yield from (c_received, *per_team, c_breach)

    h_ttr = HistogramMetricFamily(
        "ticket_time_to_route_seconds", "Creation to first team assignment.", labels=part_label
    )
    h_fr = HistogramMetricFamily(
        "ticket_first_response_seconds", "Creation to first agent response.", labels=["team", *part_label]
    )
    h_res = HistogramMetricFamily(
        "ticket_resolution_seconds", "Creation to resolution.", labels=["team", "priority", *part_label]
    )
    for part, part_snap in by_part:
        ttr = part_snap.time_to_route
        h_ttr.add_metric(part, ttr.cumulative(cfg.time_to_route_buckets), ttr.total)
        for team, t in part_snap.teams.items():
            if t.first_response is not None:
                fr = t.first_response
                h_fr.add_metric([team, *part], fr.cumulative(cfg.first_response_buckets), fr.total)
            for code, hist in sorted(t.resolution.items()):
                buckets = hist.cumulative(cfg.resolution_buckets)
                h_res.add_metric([team, PRIORITIES[code], *part], buckets, hist.total)
    yield from (h_ttr, h_fr, h_res)
    if flows:
        yield from render_flows(snap, cfg)


def render_flows(snap: Snapshot | None, cfg: BacklogConfig) -> Iterator[Metric]:
    """Per team: inflow, outflow and net flow per hour, time to clear, Erlang C agents needed and
    the workload they serve."""
    teams = list(snap.teams.items()) if snap is not None else []

    names = (
        "inflow_per_hour",
        "outflow_per_hour",
        "net_flow_per_hour",
        "hours_to_clear",
        "agents_needed",
        "agent_workload",
    )
    families = (
        ("ticket_inflow_per_hour", "Tickets entering the team's open set per hour (sliding window)."),
        (
            "ticket_outflow_per_hour",
            "Tickets leaving the team's open set (resolved or moved) per hour (sliding window).",
        ),
        ("ticket_net_flow_per_hour", "Inflow minus outflow per hour."),
        # Seconds, the base unit (promtool lint); the JSON summary keeps hours_to_clear.
        (
            "ticket_backlog_time_to_clear_seconds",
            "Open backlog / outflow, in seconds; +Inf when open > 0 and nothing flows out.",
        ),
        (
            "ticket_agents_needed",
            "Erlang C agents for the service-level target (80 % taken within the mean first-response"
            " target) at the arrival rate this instance measures (its partitions' share of the team's),"
            " each ticket taking the configured handle time (agent work, METRICS_HANDLE_SECONDS), not"
            " its time open. Per instance: summed over instances, an upper bound (Erlang C is not"
            " additive); sum ticket_agent_workload_erlangs for the team's exact lower bound.",
        ),
        (
            "ticket_agent_workload_erlangs",
            "Agents kept busy full time by the team's arrivals: inflow per hour x handle time / 1 h"
            " (offered load, erlangs). Adds up across instances; the agents needed exceed it.",
        ),
    )
    scale = {"hours_to_clear": 3600.0}
    flows = [GaugeMetricFamily(n, d, labels=["team"]) for n, d in families]
    for team, t in teams:
        assert snap is not None
        forecast = snap.forecast(team, t)
        for flow, name in zip(flows, names, strict=True):
            flow.add_metric([team], forecast[name] * scale.get(name, 1.0))
    yield from flows
