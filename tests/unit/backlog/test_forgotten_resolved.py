"""A state of a resolved ticket the shard has forgotten (beyond ``resolved_retention``): the
helpdesk closing a solved ticket days later, a reopen. The router says the ticket was resolved
before (``previous_status``): its resolution, time to route, first response and breaches were
counted when it was known, and are not counted a second time."""

from __future__ import annotations

import uuid

from services.metrics.backlog import BacklogConfig, BacklogState
from shared.events import EventType, RoutingPayload, TicketState, TicketStatus, routing_event

from .helpers import at, make_state, scrape

H = 3600.0
TEAM = (("team", "billing"),)
ONCE_PER_TICKET = (
    ("tickets_resolved_total", TEAM),
    ("ticket_resolution_seconds_count", (("priority", "P3"), *TEAM)),
    ("ticket_time_to_route_seconds_count", ()),
    ("ticket_first_response_seconds_count", TEAM),
    ("sla_breaches_total", (("kind", "first_response"), *TEAM)),
    ("sla_breaches_total", (("kind", "resolution"), *TEAM)),
)


def send(
    state: BacklogState,
    st: TicketState,
    t: float,
    kind: EventType,
    revision: int,
    previous: TicketStatus | None = None,
) -> None:
    st = st.model_copy(update={"revision": revision})
    payload = RoutingPayload(state=st, previous_status=previous)
    state.apply(routing_event(kind, payload, at(t), caused_by=uuid.uuid4()), at(t))


def judged(
    key: str,
    status: str = "solved",
    resolved: float | None = None,
    fr_due: float | None = None,
    res_due: float | None = None,
) -> TicketState:
    """A ticket of billing routed at 10 s, answered and solved late: both targets breached."""
    st = make_state(
        key,
        0,
        team="billing",
        routed=10,
        responded=3 * H,
        status=status,
        resolved=resolved,
        fr_due=fr_due,
        res_due=res_due,
    )
    st.sla.first_response_breached = st.sla.resolution_breached = True
    return st


def solved_and_forgotten() -> BacklogState:
    state = BacklogState(BacklogConfig(resolved_retention=1))
    for key in ("z:1", "z:2"):  # z:1 is forgotten once z:2 is resolved
        opened = make_state(key, 0, team="billing", routed=10, fr_due=H, res_due=2 * H)
        send(state, opened, 10, EventType.TICKET_ROUTED, 1)
        send(state, judged(key, resolved=4 * H), 4 * H, EventType.TICKET_RESOLVED, 2, TicketStatus.OPEN)
    return state


def counts(state: BacklogState) -> list[float]:
    m = scrape(state)
    return [m.get(key, 0.0) for key in ONCE_PER_TICKET]


def test_a_forgotten_solved_ticket_closed_later_is_no_new_resolution() -> None:
    state = solved_and_forgotten()
    before = counts(state)
    assert before == [2, 2, 2, 2, 2, 2]
    closed = judged("z:1", status="closed", resolved=4 * H)
    send(state, closed, 100 * H, EventType.TICKET_STATE_CHANGED, 3, TicketStatus.SOLVED)
    assert counts(state) == before
    m = scrape(state)
    assert m[("ticket_backlog_open", (("priority", "P3"), *TEAM))] == 0
    # Still forgettable: a later resolution forgets it as it would any resolved ticket.
    send(state, judged("z:3", resolved=101 * H), 101 * H, EventType.TICKET_RESOLVED, 2, TicketStatus.OPEN)
    assert state.n_used <= 2


def test_a_forgotten_ticket_reopened_counts_the_reopen_only() -> None:
    state = solved_and_forgotten()
    before = counts(state)
    reopened = judged("z:1", status="open", fr_due=H, res_due=200 * H)
    send(state, reopened, 100 * H, EventType.TICKET_REOPENED, 3, TicketStatus.SOLVED)
    m = scrape(state)
    assert counts(state) == before
    assert m[("tickets_reopened_total", TEAM)] == 1
    assert m[("tickets_routed_total", TEAM)] == 2  # reopened in its team: no routing
    assert m[("ticket_backlog_open", (("priority", "P3"), *TEAM))] == 1


def test_a_first_seen_resolution_still_counts() -> None:
    # The resolved event of a history import whose routed event was not seen: open before it.
    state = BacklogState()
    send(state, judged("z:1", resolved=4 * H), 4 * H, EventType.TICKET_RESOLVED, 2, TicketStatus.OPEN)
    assert counts(state) == [1, 1, 1, 1, 1, 1]


def test_the_typed_path_reads_the_previous_status_too() -> None:
    state = BacklogState(BacklogConfig(resolved_retention=1))
    for key in ("z:1", "z:2"):
        state.apply_state(judged(key, resolved=4 * H).model_copy(update={"revision": 2}), at(4 * H))
    before = counts(state)
    closed = judged("z:1", status="closed", resolved=4 * H).model_copy(update={"revision": 3})
    state.apply_state(closed, at(100 * H), previous_status=TicketStatus.SOLVED)
    assert counts(state) == before
