"""``ticket_sla_at_risk`` follows the router's resolution warning instant (``state.sla``), the one
its escalation scanner fires ``sla.warning`` at, and estimates it only for states that lack it.

States come from the router's own SLA clock where the point is a calendar or a pause, so the gauge
is checked against what the router computes, to the millisecond on both sides of the instant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from services.metrics.backlog import BacklogState
from services.metrics.backlog.columns import UNSET, to_ms
from services.metrics.backlog.keyindex import key_hash
from services.router.sla import BusinessCalendar, SlaClock, SlaPolicy
from shared.events import EventEnvelope, EventType, Priority, TicketState, TicketStatus

from .helpers import at, envelope, make_state, scrape

H = 3600.0
MS = timedelta(milliseconds=1)
OFFICE = BusinessCalendar(name="office", timezone="Europe/Berlin", weekly_hours={"mon-fri": ["09:00-17:00"]})
ALWAYS = BusinessCalendar.always_open()
OLD_CHECKPOINT = Path(__file__).parent / "data" / "checkpoint_without_warning_column.bin"


def policy(calendar: BusinessCalendar, **extra: object) -> SlaPolicy:
    targets = {"P2": {"first_response": 60, "resolution": 480}}
    return SlaPolicy.model_validate({"name": "p", "calendar": calendar.name, "targets": targets, **extra})


def routed(clock: SlaClock, calendar: BusinessCalendar, revision: int, created: datetime) -> TicketState:
    return TicketState(
        ticket_key=clock.ticket_key,
        source="api",
        revision=revision,
        status=clock.status,
        team="billing",
        priority=Priority.P2,
        created_at=created,
        sla=clock.to_sla_state(calendar),
    )


def instants(ticket: TicketState) -> tuple[datetime, datetime]:
    """The router's resolution warning instant and deadline (both set while the clock runs)."""
    warn, due = ticket.sla.resolution_warning_at, ticket.sla.resolution_due
    assert warn is not None and due is not None
    return warn, due


def deliver(state: BacklogState, ticket: TicketState, now: datetime, *, older_router: bool = False) -> None:
    """As the consumer gets it: bytes decoded (an older router's without the warning instants)."""
    env = envelope(ticket, 0, EventType.TICKET_STATE_CHANGED)
    doc = orjson.loads(env.to_bytes())
    if older_router:
        del doc["payload"]["state"]["sla"]["resolution_warning_at"]
        del doc["payload"]["state"]["sla"]["first_response_warning_at"]
    state.apply(EventEnvelope.from_bytes(orjson.dumps(doc)), now)


def at_risk(state: BacklogState, now: datetime | None = None, priority: str = "P2") -> float:
    if now is not None:
        state.advance_clock(now)
    return scrape(state).get(("ticket_sla_at_risk", (("priority", priority), ("team", "billing"))), 0.0)


def overdue(state: BacklogState) -> float:
    return scrape(state).get(("ticket_backlog_overdue", (("priority", "P2"), ("team", "billing"))), 0.0)


def test_business_hours_the_gauge_waits_for_the_routers_warning() -> None:
    created = datetime(2026, 6, 5, 14, 0, tzinfo=UTC)  # Friday 16:00 Berlin
    clock = SlaClock.start("api:1", policy(OFFICE), Priority.P2, created, TicketStatus.OPEN)
    ticket = routed(clock, OFFICE, 1, created)
    warn, due = instants(ticket)
    assert (warn, due) == (datetime(2026, 6, 8, 12, 0, tzinfo=UTC), datetime(2026, 6, 8, 14, 0, tzinfo=UTC))
    state = BacklogState()
    deliver(state, ticket, created)
    # 75 % of created -> due on the wall clock is Sunday 20:00 UTC; the router warns on Monday.
    assert at_risk(state, created + (due - created) * 0.75) == 0
    assert at_risk(state, warn - MS) == 0
    assert at_risk(state, warn) == 1
    assert at_risk(state, due - MS) == 1
    assert at_risk(state, due) == 1 and overdue(state) == 0  # overdue past the deadline, not at it
    assert at_risk(state, due + MS) == 0 and overdue(state) == 1


def test_business_hours_the_gauge_follows_a_warning_before_the_wall_clock_share() -> None:
    created = datetime(2026, 6, 5, 8, 0, tzinfo=UTC)  # Friday 10:00 Berlin: 7 of 8 h on Friday
    clock = SlaClock.start("api:2", policy(OFFICE), Priority.P2, created, TicketStatus.OPEN)
    ticket = routed(clock, OFFICE, 1, created)
    warn, due = instants(ticket)
    assert warn == datetime(2026, 6, 5, 14, 0, tzinfo=UTC)  # Friday 16:00 Berlin
    assert due == datetime(2026, 6, 8, 8, 0, tzinfo=UTC)  # Monday 10:00 Berlin
    state = BacklogState()
    deliver(state, ticket, created)
    assert at_risk(state, warn - MS) == 0
    assert at_risk(state, warn) == 1  # the wall-clock share would wait until Sunday
    assert at_risk(state, created + (due - created) * 0.75 - MS) == 1


def test_paused_then_resumed_the_gauge_follows_the_moved_warning() -> None:
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    hours = [t0 + timedelta(hours=h) for h in range(13)]
    p = policy(ALWAYS)
    clock = SlaClock.start("api:3", p, Priority.P2, t0, TicketStatus.OPEN)
    state = BacklogState()
    deliver(state, routed(clock, ALWAYS, 1, t0), t0)
    clock = clock.on_status(TicketStatus.PENDING, hours[1], ALWAYS)
    paused = routed(clock, ALWAYS, 2, t0)
    assert paused.sla.paused and paused.sla.resolution_warning_at is None
    deliver(state, paused, hours[1])
    assert at_risk(state, hours[4]) == 0
    clock = clock.on_status(TicketStatus.OPEN, hours[5], ALWAYS)
    resumed = routed(clock, ALWAYS, 3, t0)
    # 1 h used before the pause: the warning (6 of 8 h) at 10 h, the deadline at 12 h.
    assert (resumed.sla.resolution_warning_at, resumed.sla.resolution_due) == (hours[10], hours[12])
    deliver(state, resumed, hours[5])
    assert at_risk(state, hours[9]) == 0  # 75 % of created -> due: at risk by the old estimate
    assert at_risk(state, hours[10] - MS) == 0
    assert at_risk(state, hours[10]) == 1
    assert at_risk(state, hours[12]) == 1 and overdue(state) == 0
    assert at_risk(state, hours[12] + MS) == 0 and overdue(state) == 1


def test_the_policys_own_warning_share_counts() -> None:
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    clock = SlaClock.start("api:4", policy(ALWAYS, warning_share=0.5), Priority.P2, t0, TicketStatus.OPEN)
    state = BacklogState()
    deliver(state, routed(clock, ALWAYS, 1, t0), t0)
    assert at_risk(state, t0 + timedelta(hours=4) - MS) == 0
    assert at_risk(state, t0 + timedelta(hours=4)) == 1


def test_states_without_the_instant_use_the_wall_clock_estimate() -> None:
    state = BacklogState()
    ticket = make_state("z:1", 0, team="billing", priority="P2", res_due=8 * H, res_warn=7 * H)
    deliver(state, ticket.model_copy(update={"revision": 1}), at(0), older_router=True)
    assert at_risk(state, at(6 * H) - MS) == 0
    assert at_risk(state, at(6 * H)) == 1  # 75 % of 8 h
    # A newer router's state moves it to its own instant; an older one's (a rollback) back again.
    deliver(state, ticket.model_copy(update={"revision": 2}), at(6 * H))
    assert at_risk(state) == 0
    assert at_risk(state, at(7 * H)) == 1
    deliver(state, ticket.model_copy(update={"revision": 3}), at(7 * H), older_router=True)
    assert at_risk(state) == 1
    earlier = make_state("z:1", 0, team="billing", priority="P2", res_due=20 * H)
    deliver(state, earlier.model_copy(update={"revision": 4}), at(7 * H), older_router=True)
    assert at_risk(state) == 0  # 75 % of 20 h is 15 h


def test_checkpoint_round_trip_keeps_the_instants() -> None:
    state = BacklogState()
    for i, warn in enumerate((7 * H, 3 * H, None)):
        t = make_state(f"z:{i}", 0, team="billing", priority="P2", res_due=8 * H, res_warn=warn)
        state.apply(envelope(t, 0, EventType.TICKET_ROUTED), at(0))
    state.advance_clock(at(6.5 * H))
    assert at_risk(state) == 2  # z:1 (3 h) and z:2 (estimate, 6 h); z:0 not before 7 h
    restored = BacklogState.from_checkpoint(state.to_checkpoint())
    assert restored.a_res_warn == state.a_res_warn
    assert list(restored.a_res_warn) == [to_ms(at(7 * H)), to_ms(at(3 * H)), UNSET]
    assert scrape(restored) == scrape(state)
    assert at_risk(restored, at(7 * H) - MS) == 2
    assert at_risk(restored, at(7 * H)) == 3


def test_a_checkpoint_from_before_the_warning_column_loads() -> None:
    """The file was written by the previous version of :mod:`.checkpoint` (no ``a_res_warn``) from
    three tickets: ``z:a`` (P2, created 0, due 8 h), ``z:b`` (P2, created 2 h, due 10 h), ``z:c``
    (P3, pending, no deadline), billing, clock at 7 h."""
    state = BacklogState.from_checkpoint(OLD_CHECKPOINT.read_bytes())
    assert list(state.a_res_warn) == [UNSET] * 3
    assert state.now_ms == to_ms(at(7 * H))
    assert at_risk(state) == 1 and at_risk(state, priority="P3") == 0  # z:a, as counted when written
    # z:b by the estimate, z:a overdue (past its 8 h)
    assert at_risk(state, at(8 * H) + MS) == 1 and overdue(state) == 1
    # The next state of z:b from a router that sends its instant takes over.
    b = make_state("z:b", 2 * H, team="billing", priority="P2", res_due=10 * H, res_warn=9.5 * H)
    state.apply(envelope(b.model_copy(update={"revision": 2}), 8 * H), at(8 * H))
    assert at_risk(state) == 0
    assert at_risk(state, at(9.5 * H)) == 1
    restored = BacklogState.from_checkpoint(state.to_checkpoint())  # and it is saved from then on
    assert scrape(restored) == scrape(state)
    assert restored.a_res_warn[restored.index.get(key_hash("z:b"))] == to_ms(at(9.5 * H))
