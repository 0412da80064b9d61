"""An instance's exposition of its shards: counters per partition, so that a partition moving to
another instance never looks like a counter reset; the gauges' label caps hold for the instance,
the counters' for their partition, whichever other partitions the instance owns."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.app import ShardsCollector
from services.metrics.backlog import BacklogConfig, BacklogState
from services.metrics.ingest.consumer import BacklogIngest, Shard
from shared.events import EventType, TicketSnapshot, ticket_event
from tests.unit.backlog.helpers import at, envelope, make_state

H = 3600.0
Key = tuple[str, tuple[tuple[str, str], ...]]


def instance(states: dict[int, BacklogState]) -> BacklogIngest:
    ingest = BacklogIngest(cast(Any, None), clock=lambda: at(10 * H))  # no checkpoints: no database
    for p, state in states.items():
        ingest.shards[p] = Shard(p, state, {}, live=True)
    return ingest


def scrape(ingest: BacklogIngest) -> tuple[dict[Key, float], dict[Key, float]]:
    """(gauges, counters and histogram samples) of one instance's exposition."""
    registry = CollectorRegistry()
    registry.register(ShardsCollector(ingest))
    gauges: dict[Key, float] = {}
    counters: dict[Key, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            into = counters if family.type in ("counter", "histogram") else gauges
            into[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return gauges, counters


def without_partition(samples: dict[Key, float]) -> dict[Key, float]:
    out: dict[Key, float] = defaultdict(float)
    for (name, labels), value in samples.items():
        out[(name, tuple(kv for kv in labels if kv[0] != "partition"))] += value
    return out


def summed(*samples: dict[Key, float]) -> dict[Key, float]:
    """``sum without (instance, partition)``."""
    out: dict[Key, float] = defaultdict(float)
    for one in samples:
        for key, value in one.items():
            out[key] += value
    return dict(out)


def shard(p: int) -> BacklogState:
    """Partition p: tickets of team billing created, answered late, resolved late."""
    state = BacklogState()
    for i in range(p + 2):
        key = f"z:{p}-{i}"
        state.apply(
            ticket_event(EventType.TICKET_CREATED, "zendesk", TicketSnapshot(external_id=key[2:])), at(0)
        )
        st = make_state(key, 0, team="billing", routed=60, fr_due=600, res_due=H, responded=1200)
        state.apply(envelope(st, 1200, EventType.TICKET_ROUTED), at(1200))
        st = make_state(key, 0, team="billing", status="solved", resolved=2 * H, responded=1200)
        st.revision = 1
        state.apply(envelope(st, 2 * H, EventType.TICKET_RESOLVED), at(2 * H))
    return state


def test_a_moved_partition_is_a_new_series_on_its_new_instance_not_a_reset() -> None:
    states = {p: shard(p) for p in range(3)}
    m1, m2 = instance({0: states[0], 1: states[1]}), instance({2: states[2]})
    before = [scrape(m) for m in (m1, m2)]
    moved = m1.shards.pop(1)  # partition 1 moves from m1 to m2 with its checkpoint
    m2.shards[1] = Shard(1, BacklogState.from_checkpoint(moved.state.to_checkpoint()), {}, live=True)
    after = [scrape(m) for m in (m1, m2)]

    for (_, old), (_, new) in zip(before, after, strict=True):
        for key, value in new.items():  # every series of an instance only ever grows
            assert value >= old.get(key, 0), key
    total = summed(without_partition(before[0][1]), without_partition(before[1][1]))
    assert summed(without_partition(after[0][1]), without_partition(after[1][1])) == total
    assert total[("sla_breaches_total", (("kind", "resolution"), ("team", "billing")))] == 2 + 3 + 4
    assert total[("tickets_received_total", (("source", "zendesk"),))] == 9
    labels = (("kind", "resolution"), ("partition", "1"), ("team", "billing"))
    assert before[0][1][("sla_breaches_total", labels)] == after[1][1][("sla_breaches_total", labels)] == 3
    # Gauges stay per instance, without the partition label.
    assert not any("partition" in dict(labels) for _, labels in after[1][0])


def test_the_gauges_are_capped_for_the_instance_the_counters_per_partition() -> None:
    cap = BacklogConfig().max_teams
    states = {p: BacklogState() for p in range(6)}
    for i in range(cap + 100):  # more names than the cap, each shard within its own cap
        st = make_state(f"z:{i}", 0, team=f"group-{i}", source=f"src-{i}")
        state = states[i % 6]
        state.apply(
            ticket_event(EventType.TICKET_CREATED, f"src-{i}", TicketSnapshot(external_id=str(i))), at(1)
        )
        state.apply(envelope(st, 1, EventType.TICKET_ROUTED), at(1))
    gauges, counters = scrape(instance(states))

    teams = {dict(labels)["team"] for name, labels in gauges if name == "ticket_backlog_open"}
    assert len(teams) == cap and {"triage", "other"} <= teams
    open_total = sum(v for (name, _), v in gauges.items() if name == "ticket_backlog_open")
    assert open_total == cap + 100
    other = sum(
        v
        for (name, labels), v in gauges.items()
        if name == "ticket_backlog_open" and ("team", "other") in labels
    )
    assert other == cap + 100 - (cap - 2)
    # The counters keep each partition's own labels, within the cap per partition (sources alike).
    for p, state in states.items():
        part = ("partition", str(p))
        routed_teams = {
            dict(k)["team"] for name, k in counters if name == "tickets_routed_total" and part in k
        }
        assert routed_teams == set(state.teams.values) and len(routed_teams) <= cap
        sources = {
            dict(k)["source"] for name, k in counters if name == "tickets_received_total" and part in k
        }
        assert sources == set(state.sources.values)
    all_teams = {dict(k)["team"] for name, k in counters if name == "tickets_routed_total"}
    assert len(all_teams) == cap + 100 + 2  # the groups, triage, other: at most cap x partitions
    routed = sum(v for (name, _), v in counters.items() if name == "tickets_routed_total")
    received = sum(v for (name, _), v in counters.items() if name == "tickets_received_total")
    assert routed == received == cap + 100


def routed_shard(p: int, teams: list[str]) -> BacklogState:
    """Partition p: one ticket routed to each of ``teams``, received from a source of its own."""
    state = BacklogState()
    for i, team in enumerate(teams):
        key, source = f"z:{p}-{i}", f"src-{p}-{i}"
        state.apply(
            ticket_event(EventType.TICKET_CREATED, source, TicketSnapshot(external_id=key[2:])), at(0)
        )
        st = make_state(key, 0, team=team, routed=60, source=source)
        state.apply(envelope(st, 60, EventType.TICKET_ROUTED), at(60))
    return state


def test_a_partitions_counters_keep_their_labels_whichever_other_partitions_the_instance_owns() -> None:
    # Partition 0 names as many teams (sources) as the cap leaves; partition 1 a team of its own.
    cap = BacklogConfig().max_teams
    p0 = routed_shard(0, [f"team-{i}" for i in range(cap - 2)])
    p1 = routed_shard(1, ["late"])

    def of_partition_1(counters: dict[Key, float]) -> dict[Key, float]:
        return {k: v for k, v in counters.items() if ("partition", "1") in k[1]}

    m = instance({0: p0, 1: p1})
    before = of_partition_1(scrape(m)[1])
    m.shards.pop(0)  # partition 0 revoked ...
    alone = of_partition_1(scrape(m)[1])
    m.shards[0] = Shard(0, BacklogState.from_checkpoint(p0.to_checkpoint()), {}, live=True)  # ... back
    again = of_partition_1(scrape(m)[1])
    # Partition 1 restored on another instance beside partition 0: the same series, the same counts.
    moved = instance({0: p0, 1: BacklogState.from_checkpoint(p1.to_checkpoint())})
    assert before == alone == again == of_partition_1(scrape(moved)[1])
    labels = (("partition", "1"), ("team", "late"))
    assert before[("tickets_routed_total", labels)] == 1
    assert before[("tickets_received_total", (("partition", "1"), ("source", "src-1-0")))] == 1
