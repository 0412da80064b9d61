"""The flow and staffing families as a collector of their own: the same exposition, and a scrape
that names other series never computes them."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from services.metrics.backlog import BacklogCollector, BacklogState, FlowCollector
from services.metrics.backlog.snapshot import Snapshot
from tests.integration.metrics.truth import Stream

T0 = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _state() -> BacklogState:
    state, stream = BacklogState(), Stream(T0, random.Random(7))
    for _ in range(300):
        for envelope in stream.step():
            state.apply(envelope, T0)
    return state


def _registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def test_split_collectors_expose_what_the_single_one_does():
    state = _state()
    at = T0 + timedelta(minutes=5)
    single = BacklogCollector(state, clock=lambda: at)
    main = BacklogCollector(state, clock=lambda: at, include_flows=False)
    text_single = generate_latest(_registry(single)).decode()
    text_split = generate_latest(_registry(main, FlowCollector(main))).decode()
    assert "ticket_agents_needed{" in text_single and "tickets_routed_total{" in text_single
    assert sorted(text_split.splitlines()) == sorted(text_single.splitlines())


def test_a_scrape_of_a_counter_does_not_compute_the_forecast(monkeypatch: pytest.MonkeyPatch):
    main = BacklogCollector(_state(), clock=lambda: T0, include_flows=False)
    registry = _registry(main, FlowCollector(main))

    def forbidden(*_args: object) -> dict[str, float]:
        raise AssertionError("forecast computed for a scrape that did not ask for it")

    monkeypatch.setattr(Snapshot, "forecast", forbidden)
    text = generate_latest(registry.restricted_registry(["tickets_routed_total"])).decode()
    assert "tickets_routed_total{" in text
    with pytest.raises(AssertionError, match="forecast computed"):
        generate_latest(registry.restricted_registry(["ticket_agents_needed"]))


def _count_snapshots(monkeypatch: pytest.MonkeyPatch, collector: BacklogCollector) -> list[int]:
    calls = [0]
    take = collector.snapshot

    def counted() -> Snapshot:
        calls[0] += 1
        return take()

    monkeypatch.setattr(collector, "snapshot", counted)
    return calls


def test_a_full_scrape_takes_one_snapshot_for_gauges_and_flows(monkeypatch: pytest.MonkeyPatch):
    main = BacklogCollector(_state(), clock=lambda: T0, include_flows=False)
    registry = _registry(main, FlowCollector(main))
    calls = _count_snapshots(monkeypatch, main)
    text = generate_latest(registry).decode()
    assert "ticket_agents_needed{" in text and "ticket_backlog_open{" in text
    assert calls == [1]
    generate_latest(registry)
    assert calls == [2]


def test_flows_never_reuse_a_stale_or_foreign_snapshot(monkeypatch: pytest.MonkeyPatch):
    main = BacklogCollector(_state(), clock=lambda: T0, include_flows=False)
    flows = FlowCollector(main)
    registry = _registry(main, flows)
    calls = _count_snapshots(monkeypatch, main)
    real_forecast = Snapshot.forecast

    def forbidden(*_args: object) -> dict[str, float]:
        raise AssertionError("forecast computed for a scrape that did not ask for it")

    # A counter-only scrape: one snapshot, no forecast; it leaves its snapshot behind.
    monkeypatch.setattr(Snapshot, "forecast", forbidden)
    assert (
        "tickets_routed_total{"
        in generate_latest(registry.restricted_registry(["tickets_routed_total"])).decode()
    )
    assert calls == [1]
    monkeypatch.setattr(Snapshot, "forecast", real_forecast)

    # Another thread's scrape does not see this thread's snapshot.
    other = threading.Thread(target=lambda: list(flows.collect()))
    other.start()
    other.join()
    assert calls == [2]

    # This thread's is reused once, while fresh ...
    list(flows.collect())
    assert calls == [2]
    list(flows.collect())
    assert calls == [3]
    # ... and never once stale.
    main.handoff_seconds = 0.0
    list(main.collect())
    list(flows.collect())
    assert calls == [5]
