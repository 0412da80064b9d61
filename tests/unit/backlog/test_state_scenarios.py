"""Targeted scenarios: time transitions at exact boundaries, counters, caps, summary, exposition."""

from __future__ import annotations

import math
import uuid

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.backlog import BacklogCollector, BacklogConfig, BacklogState
from services.metrics.backlog.keyindex import key_hash
from shared.events import EventEnvelope, EventType, TicketSnapshot, TicketStatus, ticket_event

from .helpers import at, envelope, make_state, scrape

H = 3600.0


def gauge(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def test_time_transitions_at_exact_boundaries() -> None:
    state = BacklogState()
    t = make_state("z:1", 0, team="billing", priority="P2", routed=60, fr_due=1800, res_due=8 * H)
    state.apply(envelope(t, 60, EventType.TICKET_ROUTED), at(60))
    m = scrape(state)
    assert gauge(m, "ticket_backlog_open", team="billing", priority="P2") == 1
    assert gauge(m, "ticket_open_age_bucket", team="billing", le="3600.0") == 1
    assert gauge(m, "ticket_oldest_open_age_seconds", team="billing") == 60

    state.advance_clock(at(H))  # age exactly 1 h: still le=3600
    assert gauge(scrape(state), "ticket_open_age_bucket", team="billing", le="3600.0") == 1
    state.advance_clock(at(H + 0.001))
    m = scrape(state)
    assert gauge(m, "ticket_open_age_bucket", team="billing", le="3600.0") == 0
    assert gauge(m, "ticket_open_age_bucket", team="billing", le="14400.0") == 1
    assert gauge(m, "sla_breaches_total", team="billing", kind="first_response") == 1

    state.advance_clock(at(6 * H - 1))
    assert gauge(scrape(state), "ticket_sla_at_risk", team="billing", priority="P2") == 0
    state.advance_clock(at(6 * H))  # 75 % of the 8 h target
    assert gauge(scrape(state), "ticket_sla_at_risk", team="billing", priority="P2") == 1
    state.advance_clock(at(8 * H))  # the deadline itself: not missed yet
    m = scrape(state)
    assert gauge(m, "ticket_sla_at_risk", team="billing", priority="P2") == 1
    assert gauge(m, "ticket_backlog_overdue", team="billing", priority="P2") == 0
    assert gauge(m, "sla_breaches_total", team="billing", kind="resolution") == 0
    state.advance_clock(at(8 * H + 0.001))
    m = scrape(state)
    assert gauge(m, "ticket_sla_at_risk", team="billing", priority="P2") == 0
    assert gauge(m, "ticket_backlog_overdue", team="billing", priority="P2") == 1
    assert gauge(m, "sla_breaches_total", team="billing", kind="resolution") == 1
    state.advance_clock(at(30 * H))  # more time passing never re-counts a breach
    m = scrape(state)
    assert gauge(m, "sla_breaches_total", team="billing", kind="resolution") == 1
    assert gauge(m, "ticket_oldest_open_age_seconds", team="billing") == 30 * H

    # Pausing (pending on the requester) stops the SLA gauges; moving the deadline re-arms.
    state.apply(
        envelope(
            make_state(
                "z:1",
                0,
                team="billing",
                priority="P2",
                status="pending",
                fr_due=1800,
                res_due=8 * H,
                paused=True,
            ),
            30 * H,
        ),
        at(30 * H),
    )
    m = scrape(state)
    assert gauge(m, "ticket_backlog_overdue", team="billing", priority="P2") == 0
    assert gauge(m, "ticket_open_by_status", team="billing", status="pending") == 1
    state.apply(
        envelope(make_state("z:1", 0, team="billing", priority="P2", fr_due=1800, res_due=40 * H), 31 * H),
        at(31 * H),
    )
    state.advance_clock(at(41 * H))
    assert gauge(scrape(state), "sla_breaches_total", team="billing", kind="resolution") == 2


def test_transition_counters_and_duplicates() -> None:
    state = BacklogState()
    triage = make_state("z:1", 0, team=None, fr_due=H, res_due=24 * H)
    state.apply(envelope(triage, 10), at(10))
    routed = make_state("z:1", 0, team="tech", routed=100, fr_due=H, res_due=24 * H)
    ev = envelope(routed, 100, EventType.TICKET_ROUTED)
    state.apply(ev, at(100))
    state.apply(ev, at(101))  # duplicate delivery
    escalated = make_state(
        "z:1", 0, team="tech", priority="P1", routed=100, fr_due=H, res_due=24 * H, responded=2 * H
    )
    state.apply(envelope(escalated, 2 * H, EventType.TICKET_ESCALATED), at(2 * H))
    solved = escalated.model_copy(update={"status": TicketStatus.SOLVED, "resolved_at": at(3 * H)})
    state.apply(envelope(solved, 3 * H, EventType.TICKET_RESOLVED), at(3 * H))
    closed = solved.model_copy(update={"status": TicketStatus.CLOSED})
    state.apply(envelope(closed, 4 * H), at(4 * H))  # solved -> closed is not a new resolution
    reopened = escalated.model_copy(update={"revision": 5})
    state.apply(envelope(reopened, 5 * H, EventType.TICKET_REOPENED), at(5 * H))
    stale = escalated.model_copy(update={"status": TicketStatus.SOLVED, "revision": 4})
    state.apply(envelope(stale, 5 * H), at(5 * H))  # older revision: ignored

    m = scrape(state)
    assert gauge(m, "tickets_routed_total", team="tech") == 1
    assert gauge(m, "tickets_escalated_total", team="tech") == 1
    assert gauge(m, "tickets_resolved_total", team="tech") == 1
    assert gauge(m, "tickets_reopened_total", team="tech") == 1
    assert gauge(m, "sla_breaches_total", team="tech", kind="first_response") == 1  # answered late
    assert gauge(m, "ticket_time_to_route_seconds_count") == 1
    assert gauge(m, "ticket_time_to_route_seconds_sum") == 100
    assert gauge(m, "ticket_first_response_seconds_count", team="tech") == 1
    assert gauge(m, "ticket_resolution_seconds_sum", team="tech", priority="P1") == 3 * H
    assert gauge(m, "ticket_backlog_open", team="tech", priority="P1") == 1
    # Window of 60 minutes: only the reopen (an entry into the open set) at 5 h is still in it.
    assert gauge(m, "ticket_inflow_per_hour", team="tech") == 1
    assert gauge(m, "ticket_outflow_per_hour", team="tech") == 0


def test_received_counter_from_ticket_events() -> None:
    state = BacklogState()
    ev = ticket_event(EventType.TICKET_CREATED, "jira", TicketSnapshot(external_id="1"), at(0))
    state.apply(ev, at(0))
    state.apply(ev, at(1))
    state.apply(ticket_event(EventType.TICKET_UPDATED, "jira", TicketSnapshot(external_id="1"), at(2)), at(2))
    state.record_received("email", at(3), uuid.uuid4())
    m = scrape(state)
    assert gauge(m, "tickets_received_total", source="jira") == 1
    assert gauge(m, "tickets_received_total", source="email") == 1


def test_label_cap_maps_overflow_to_other() -> None:
    state = BacklogState(BacklogConfig(max_teams=5, max_sources=3, max_categories=3))
    for i in range(20):
        st = make_state(f"z:{i}", 0, team=f"team{i}", source=f"src{i}", category=f"cat{i}")
        state.apply(envelope(st, 10), at(10))
    m = scrape(state)
    teams = {dict(k[1]).get("team") for k in m if k[0] == "ticket_backlog_open"}
    assert teams == {"triage", "other", "team0", "team1", "team2"}
    assert sum(v for k, v in m.items() if k[0] == "ticket_backlog_open") == 20
    assert gauge(m, "ticket_backlog_open", team="other", priority="P3") == 17
    sources = {dict(k[1])["source"] for k in m if k[0] == "tickets_received_total"}
    assert len(sources) <= 3 and len(state.categories) <= 3


def test_a_team_or_source_named_as_a_reserved_label_value_is_not_counted_as_it() -> None:
    # A helpdesk group (any name, unlike our teams) named "triage" is no unassigned ticket, one
    # named "other" no overflow: each gets the mark "~", as does a name already starting with it.
    state = BacklogState()
    tickets = [("z:0", None, "zendesk"), ("z:1", "triage", "zendesk"), ("z:2", "other", "other")]
    tickets += [("z:3", "~triage", "zendesk")]
    for key, team, source in tickets:
        state.apply(ticket_event(EventType.TICKET_CREATED, source, TicketSnapshot(external_id=key)), at(0))
        state.apply(
            envelope(make_state(key, 0, team=team, source=source), 10, EventType.TICKET_ROUTED), at(10)
        )
    m = scrape(state)
    assert gauge(m, "ticket_triage_open") == 1
    assert state.summary()["triage_open"] == 1
    for label, expected in (("triage", 1), ("other", 0), ("~triage", 1), ("~other", 1), ("~~triage", 1)):
        assert gauge(m, "ticket_backlog_open", team=label, priority="P3") == expected, label
    assert gauge(m, "tickets_routed_total", team="~triage") == 1
    assert gauge(m, "tickets_routed_total", team="triage") == 0
    assert gauge(m, "tickets_received_total", source="~other") == 1
    assert gauge(m, "tickets_received_total", source="other") == 0
    restored = BacklogState.from_checkpoint(state.to_checkpoint())
    assert scrape(restored) == m
    restored.apply(envelope(make_state("z:4", 0, team="triage"), 20, EventType.TICKET_ROUTED), at(20))
    m = scrape(restored)
    assert gauge(m, "ticket_triage_open") == 1  # the restored state keeps them apart too
    assert gauge(m, "ticket_backlog_open", team="~triage", priority="P3") == 2


def test_flow_forecast_and_summary() -> None:
    state = BacklogState(BacklogConfig(default_handle_seconds=1800, default_answer_target_seconds=600))
    for i in range(30):
        st = make_state(f"z:{i}", i * 60, team="sales", routed=i * 60, res_due=i * 60 + 4 * H)
        state.apply(envelope(st, i * 60), at(i * 60))
    for i in range(10):
        st = make_state(
            f"z:{i}",
            i * 60,
            team="sales",
            status="solved",
            resolved=1800 + i * 60,
            routed=i * 60,
            res_due=i * 60 + 4 * H,
        )
        state.apply(envelope(st, 1800 + i * 60), at(1800 + i * 60))
    state.advance_clock(at(2400))
    summary = state.summary()["teams"]["sales"]
    assert summary["open"] == 20
    assert summary["inflow_per_hour"] == 30 and summary["outflow_per_hour"] == 10
    assert summary["hours_to_clear"] == pytest.approx(2.0)
    assert summary["by_priority"] == {"P1": 0, "P2": 0, "P3": 20, "P4": 0}
    assert summary["oldest_age_seconds"] == 2400 - 600  # z:0..z:9 resolved
    # 30 arrivals/h, mean handle = mean resolution time of the 10 resolved = 1800 s.
    from services.metrics.backlog import agents_needed

    assert summary["agents_needed"] == agents_needed(30, 1800, 600, 0.8) > 0
    m = scrape(state)
    assert gauge(m, "ticket_agents_needed", team="sales") == summary["agents_needed"]
    assert gauge(m, "ticket_net_flow_per_hour", team="sales") == 20
    state.advance_clock(at(2400 + 2 * H))  # window empties: nothing flows out any more
    assert math.isinf(gauge(scrape(state), "ticket_backlog_time_to_clear_seconds", team="sales"))
    assert state.summary()["teams"]["sales"]["hours_to_clear"] is None


def test_collector_exposition_conventions() -> None:
    state = BacklogState()
    state.apply(envelope(make_state("z:1", 0, team="tech", routed=5, responded=60), 60), at(60))
    registry = CollectorRegistry()
    registry.register(BacklogCollector(state, clock=lambda: at(120)))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families["tickets_routed"].type == "counter"
    assert {s.name for s in families["tickets_routed"].samples} == {"tickets_routed_total"}
    assert families["ticket_time_to_route_seconds"].type == "histogram"
    buckets = [s for s in families["ticket_time_to_route_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 1
    assert families["ticket_backlog_open"].type == "gauge"
    assert families["ticket_triage_open"].samples[0].value == 0
    oldest = families["ticket_oldest_open_age_seconds"].samples
    assert [(s.labels["team"], s.value) for s in oldest] == [("triage", 0.0), ("other", 0.0), ("tech", 120.0)]
    # Age distribution: a gauge histogram (TYPE histogram in text 0.0.4, so promtool's lint accepts
    # the _bucket suffix and the le label), with _gcount/_gsum gauges beside it.
    assert families["ticket_open_age"].type == "histogram"
    assert families["ticket_open_age_gsum"].samples[-1].value == 120.0
    expected = {
        "ticket_open_by_status",
        "ticket_backlog_overdue",
        "ticket_open_age",
        "ticket_open_age_gcount",
        "ticket_sla_at_risk",
        "sla_breaches",
        "ticket_first_response_seconds",
        "ticket_resolution_seconds",
        "ticket_inflow_per_hour",
        "ticket_outflow_per_hour",
        "ticket_net_flow_per_hour",
        "ticket_backlog_time_to_clear_seconds",
        "ticket_agents_needed",
        "tickets_received",
        "tickets_resolved",
        "tickets_reopened",
        "tickets_escalated",
    }
    assert expected <= set(families)


def test_checkpoint_round_trip_is_exact_and_compact() -> None:
    state = BacklogState()
    for i in range(500):
        st = make_state(
            f"z:{i}",
            i * 10,
            team=f"t{i % 7}",
            priority=f"P{i % 4 + 1}",
            routed=i * 10,
            fr_due=i * 10 + H,
            res_due=i * 10 + 5 * H,
        )
        state.apply(envelope(st, 5000), at(5000))
    raw = state.to_checkpoint()
    restored = BacklogState.from_checkpoint(raw)
    assert scrape(restored) == scrape(state)
    assert restored.summary() == state.summary()
    for s in (state, restored):
        s.advance_clock(at(9 * H))
    assert scrape(restored) == scrape(state)
    assert len(raw) < 500 * 100
    with pytest.raises(ValueError):
        BacklogState.from_checkpoint(b"nope")


@pytest.mark.parametrize(
    ("field", "value"),
    [("revision", "1"), ("revision", 1.0), ("paused", "false"), ("paused", 0), ("created_at", "1704067200")],
)
def test_a_state_is_read_as_the_contract_reads_it(field: str, value: object) -> None:
    """The state reads the routing payload as published, without a second validation: a value the
    contract accepts in another form than the router writes (pydantic's lax mode: numbers as text,
    a bool as text or 0/1, a time as Unix seconds in text) must mean what it means to the contract,
    not crash every attempt (and be dead-lettered) nor read as something else."""
    st = make_state("z:1", 0, team="billing", res_due=H)
    raw = envelope(st, 60).model_dump(mode="json")
    state_doc = raw["payload"]["state"]
    (state_doc["sla"] if field == "paused" else state_doc)[field] = value
    decoded = EventEnvelope.decode(orjson.dumps(raw))[0]
    expected = decoded.routing().state  # what the contract reads
    assert expected.created_at == at(0) and not expected.sla.paused

    state = BacklogState()
    state.apply(decoded, at(60))
    state.advance_clock(at(2 * H))
    m = scrape(state)
    assert gauge(m, "ticket_backlog_overdue", team="billing", priority="P3") == 1
    assert gauge(m, "ticket_oldest_open_age_seconds", team="billing") == 2 * H
    assert state.a_rev[state.index.get(key_hash("z:1"))] == expected.revision


def test_a_time_in_digits_is_unix_time_as_in_the_contract() -> None:
    """A time in digits ("20240101") is Unix seconds to the contract (1970-08-23), not a date."""
    st = make_state("z:1", 0, team="billing")
    raw = envelope(st, 60).model_dump(mode="json")
    raw["payload"]["state"]["created_at"] = "20240101"
    decoded = EventEnvelope.decode(orjson.dumps(raw))[0]
    created = decoded.routing().state.created_at
    state = BacklogState()
    state.apply(decoded, at(60))
    m = scrape(state)
    assert gauge(m, "ticket_oldest_open_age_seconds", team="billing") == (at(60) - created).total_seconds()
