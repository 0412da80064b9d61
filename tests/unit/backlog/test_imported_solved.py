"""A ticket first seen already solved (a history import): the router publishes it open, with the
deadlines of its original creation (long past), then resolved at the source's solved instant, both
decided at one instant. The deadlines are judged by that solved instant, each counted once."""

from __future__ import annotations

from datetime import datetime

from services.metrics.backlog import BacklogState
from services.router.routing.lifecycle import RouteResult, decide
from shared.events import EventType, TicketSnapshot, routing_event, ticket_event
from tests.unit.backlog.helpers import at, envelope, make_state, scrape

H = 3600.0
DAY = 24 * H
NOW = 7 * DAY  # the import: created 7 days before it, first response due at 1 h, resolution at 4 h


def breaches(state: BacklogState) -> tuple[float, float]:
    s = scrape(state)
    return tuple(  # type: ignore[return-value]
        s.get(("sla_breaches_total", (("kind", kind), ("team", "billing"))), 0.0)
        for kind in ("first_response", "resolution")
    )


def imported(state: BacklogState, solved: float, key: str = "api:1") -> None:
    """What the router's first sight of a solved ticket publishes (lifecycle._first_sight)."""
    opened = make_state(key, 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H, res_warn=3 * H)
    opened.revision = 1
    done = make_state(key, 0, team="billing", routed=NOW, status="solved", resolved=solved)
    done.revision = 2  # a solved state carries no deadline (the router's clocks stopped)
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED, history_import=True), at(NOW))
    state.apply(envelope(done, NOW, EventType.TICKET_RESOLVED, history_import=True), at(NOW))


def test_an_import_solved_within_its_targets_counts_no_breach() -> None:
    state = BacklogState()
    for i in range(3):
        imported(state, solved=600, key=f"api:{i}")
    state.advance_clock(at(NOW + DAY))
    assert breaches(state) == (0, 0)
    s = scrape(state)
    assert s[("tickets_resolved_total", (("team", "billing"),))] == 3
    assert s[("ticket_backlog_open", (("priority", "P3"), ("team", "billing")))] == 0


def test_an_import_solved_late_counts_each_missed_deadline_once() -> None:
    state = BacklogState()
    imported(state, solved=5 * H)  # past both targets, no reply
    imported(state, solved=2 * H, key="api:2")  # unanswered past the first-response target only
    assert breaches(state) == (2, 1)
    state.advance_clock(at(NOW + DAY))
    assert breaches(state) == (2, 1)


def test_an_open_ticket_first_seen_past_its_deadlines_counts_them_once_the_clock_moves() -> None:
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H)
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    s = scrape(state)
    assert s[("ticket_backlog_overdue", (("priority", "P3"), ("team", "billing")))] == 1
    state.advance_clock(at(NOW + 0.001))
    assert breaches(state) == (1, 1)
    state.advance_clock(at(NOW + DAY))
    assert breaches(state) == (1, 1)


def test_a_pending_breach_followed_by_an_open_state_counts_for_the_previous_team() -> None:
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H)
    opened.revision = 1
    moved = make_state("api:1", 0, team="access", routed=NOW, fr_due=H, res_due=4 * H)
    moved.revision = 2  # decided at the same instant, still open: the deadlines were missed
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    state.apply(envelope(moved, NOW, EventType.TICKET_ROUTED), at(NOW))
    state.advance_clock(at(NOW + DAY))
    assert breaches(state) == (1, 1)  # billing's, not access's


def test_a_reply_in_time_at_the_same_instant_settles_the_first_response_deadline() -> None:
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H)
    opened.revision = 1
    answered = make_state("api:1", 0, team="billing", routed=NOW, res_due=4 * H, responded=600)
    answered.revision = 2
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    state.apply(envelope(answered, NOW), at(NOW))
    state.advance_clock(at(NOW + DAY))
    assert breaches(state) == (0, 1)  # answered at 10 min; still open long past 4 h


def test_a_breach_pending_at_a_checkpoint_counts_once_after_the_restore() -> None:
    from services.metrics.backlog.checkpoint import capture, load, seal

    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H)
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    with state.lock:
        body = capture(state)
    restored = load(seal(body))
    restored.advance_clock(at(NOW + 1))
    restored.advance_clock(at(NOW + 2))
    assert breaches(restored) == (1, 1)


def test_a_checkpoint_between_the_open_and_the_solved_state_of_one_instant_changes_nothing() -> None:
    """The import's two states at one instant, a checkpoint taken between them (a periodic one, a
    revocation): restored, the solved state still settles the pending breaches, as straight on."""
    from services.metrics.backlog.checkpoint import capture, load, seal

    opened = make_state("api:1", 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H)
    opened.revision = 1
    done = make_state("api:1", 0, team="billing", routed=NOW, status="solved", resolved=600, responded=300)
    done.revision = 2
    state = BacklogState()
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    with state.lock:
        body = capture(state)
    restored = load(seal(body))
    restored.apply(envelope(done, NOW, EventType.TICKET_RESOLVED), at(NOW))
    restored.advance_clock(at(NOW + DAY))
    assert breaches(restored) == (0, 0)


def flows(state: BacklogState, team: str = "billing") -> tuple[float, float, float]:
    s = scrape(state)
    return tuple(  # type: ignore[return-value]
        s[(name, (("team", team),))]
        for name in ("ticket_inflow_per_hour", "ticket_outflow_per_hour", "ticket_agents_needed")
    )


def test_an_import_is_no_flow_into_or_out_of_the_queue() -> None:
    """Imported solved tickets waited in no queue: 2,000 of them made the team's inflow and outflow
    2,000 an hour, and Erlang C asked for hundreds of agents, for the hour after the import."""
    state = BacklogState()
    for i in range(2000):
        imported(state, solved=600, key=f"api:{i}")
    assert flows(state) == (0, 0, 0)
    s = scrape(state)
    assert s[("tickets_resolved_total", (("team", "billing"),))] == 2000  # still resolved, once each


def test_an_import_is_no_flow_across_a_checkpoint_between_its_states() -> None:
    from services.metrics.backlog.checkpoint import capture, load, seal

    opened = make_state("api:1", 0, team="billing", routed=NOW, fr_due=H, res_due=4 * H)
    opened.revision = 1
    done = make_state("api:1", 0, team="billing", routed=NOW, status="solved", resolved=600)
    done.revision = 2
    state = BacklogState()
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    with state.lock:
        body = capture(state)
    restored = load(seal(body))
    restored.apply(envelope(done, NOW, EventType.TICKET_RESOLVED), at(NOW))
    assert flows(restored) == (0, 0, 0)


def test_tickets_that_wait_in_the_queue_are_flows() -> None:
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW)
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    moved = make_state("api:2", 0, team="access", routed=NOW)
    state.apply(envelope(moved, NOW, EventType.TICKET_ROUTED), at(NOW))
    moved = make_state("api:2", 0, team="billing", routed=NOW)
    moved.revision = 1  # moved at the same instant: a flow into billing only
    state.apply(envelope(moved, NOW, EventType.TICKET_ROUTED), at(NOW))
    done = make_state("api:1", 0, team="billing", routed=NOW, status="solved", resolved=NOW + 60)
    done.revision = 1
    state.apply(envelope(done, NOW + 60, EventType.TICKET_RESOLVED), at(NOW + 60))
    assert flows(state)[:2] == (2, 1)
    assert flows(state, "access")[:2] == (0, 0)


def test_marks_of_an_instant_in_a_checkpoint_without_it_are_dropped() -> None:
    """A checkpoint saved by a release that knows nothing of the instant (it may have kept a mark
    from a newer one's): a ticket marked there leaving later is an outflow, as it was."""
    import zlib

    import orjson

    from services.metrics.backlog.checkpoint import MAGIC

    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW)
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    body = zlib.decompress(state.to_checkpoint()[len(MAGIC) :])
    head_len = int.from_bytes(body[:4], "little")
    header = orjson.loads(body[4 : 4 + head_len])
    del header["entered"]
    head = orjson.dumps(header)
    old = BacklogState.from_checkpoint(
        MAGIC + zlib.compress(len(head).to_bytes(4, "little") + head + body[4 + head_len :])
    )
    done = make_state("api:1", 0, team="billing", routed=NOW, status="solved", resolved=NOW)
    done.revision = 1
    old.apply(envelope(done, NOW, EventType.TICKET_RESOLVED), at(NOW))
    assert flows(old)[:2] == (1, 1)


def _decided_import(state: BacklogState, created: datetime, solved: datetime, now: datetime) -> None:
    """The router's own decision on a ticket first seen solved, published as its batch does."""
    snapshot = TicketSnapshot(external_id="9", status="solved", created_at=created, updated_at=solved)
    event = ticket_event(EventType.TICKET_STATUS_CHANGED, "api", snapshot, occurred_at=solved)
    decision = decide(None, None, event, snapshot, lambda _snapshot, _source: RouteResult("billing"), now)
    assert [kind for kind, _ in decision.events] == [EventType.TICKET_ROUTED, EventType.TICKET_RESOLVED]
    for kind, payload in decision.events:
        state.apply(routing_event(kind, payload, now, event.event_id), now)


def test_an_import_is_no_routing_and_no_time_to_route() -> None:
    """Old tickets backfilled months after they were solved: each counted routed, and observed as a
    routing taking months, pushed the time-to-route quantiles to the top bucket for the rate window."""
    state = BacklogState()
    _decided_import(state, created=at(0), solved=at(DAY), now=at(90 * DAY))
    s = scrape(state)
    assert s.get(("tickets_routed_total", (("team", "billing"),)), 0.0) == 0
    assert s[("ticket_time_to_route_seconds_count", ())] == 0
    # Still a resolution, measured on the source's instants (created -> solved: one day).
    assert s[("tickets_resolved_total", (("team", "billing"),))] == 1
    assert s[("ticket_resolution_seconds_sum", (("priority", "P3"), ("team", "billing")))] == DAY


def test_a_ticket_first_seen_open_long_after_its_creation_is_a_routing() -> None:
    """Only the router's word makes an import: a ticket older than the router, first heard of by a
    comment and routed now, waited unrouted all that time (counted, observed as it is)."""
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW)
    state.apply(envelope(opened, NOW, EventType.TICKET_ROUTED), at(NOW))
    s = scrape(state)
    assert s[("tickets_routed_total", (("team", "billing"),))] == 1
    assert s[("ticket_time_to_route_seconds_sum", ())] == NOW


def test_an_import_applied_as_typed_states_is_no_routing() -> None:
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=NOW)
    opened.revision = 1
    done = make_state("api:1", 0, team="billing", routed=NOW, status="solved", resolved=600)
    done.revision = 2
    for st, kind in ((opened, EventType.TICKET_ROUTED), (done, EventType.TICKET_RESOLVED)):
        state.apply_state(st, at(NOW), event_type=kind, occurred_at=at(NOW), history_import=True)
    s = scrape(state)
    assert s.get(("tickets_routed_total", (("team", "billing"),)), 0.0) == 0
    assert s[("ticket_time_to_route_seconds_count", ())] == 0
    assert s[("tickets_resolved_total", (("team", "billing"),))] == 1


def test_an_import_whose_routed_event_is_missing_is_no_time_to_route() -> None:
    """Its solved state first (the routed one dead-lettered, or not yet checkpointed): still none."""
    state = BacklogState()
    done = make_state("api:1", 0, team="billing", routed=NOW, status="solved", resolved=600)
    done.revision = 2
    state.apply(envelope(done, NOW, EventType.TICKET_RESOLVED, history_import=True), at(NOW))
    s = scrape(state)
    assert s[("ticket_time_to_route_seconds_count", ())] == 0
    assert s[("tickets_resolved_total", (("team", "billing"),))] == 1


def test_a_reopened_import_moved_to_another_team_is_a_routing() -> None:
    """After the import, the ticket lives: a reopen routed to another team is counted (no time to
    route: its first assignment was the import's)."""
    state = BacklogState()
    imported(state, solved=600)
    moved = make_state("api:1", 0, team="access", routed=NOW + H)
    moved.revision = 3
    state.apply(envelope(moved, NOW + H, EventType.TICKET_REOPENED), at(NOW + H))
    s = scrape(state)
    assert s[("tickets_routed_total", (("team", "access"),))] == 1
    assert s.get(("tickets_routed_total", (("team", "billing"),)), 0.0) == 0
    assert s[("ticket_time_to_route_seconds_count", ())] == 0
