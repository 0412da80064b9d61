"""Time to route: creation to the decision that gave the ticket its first team.

The router sets ``routed_at`` when it routes, the triage queue included (a ticket's first sight),
and leaves it when an agent moves a waiting ticket out of triage in the helpdesk (a move it takes
over as is, see ``services/router/routing/lifecycle.py``): that state's ``routed_at`` is the
instant the ticket entered triage, not the one it got its team."""

from __future__ import annotations

from services.metrics.backlog import BacklogState
from shared.events import EventType

from .helpers import at, envelope, make_state, scrape

H = 3600.0


def ttr(state: BacklogState) -> tuple[float, float]:
    m = scrape(state)
    return m[("ticket_time_to_route_seconds_count", ())], m[("ticket_time_to_route_seconds_sum", ())]


def test_a_ticket_moved_out_of_triage_in_its_helpdesk_waited_until_then() -> None:
    state = BacklogState()
    triaged = make_state("z:1", 0, team=None, routed=60).model_copy(update={"revision": 1})
    state.apply(envelope(triaged, 60, EventType.TICKET_ROUTED), at(60))
    moved = make_state("z:1", 0, team="billing", routed=60).model_copy(update={"revision": 2})
    state.apply(envelope(moved, 3 * H), at(3 * H))  # routed_at still says when it entered triage
    assert ttr(state) == (1, 3 * H)


def test_a_ticket_routed_by_the_router_uses_its_routing_instant() -> None:
    state = BacklogState()
    triaged = make_state("z:1", 0, team=None, routed=60).model_copy(update={"revision": 1})
    state.apply(envelope(triaged, 60, EventType.TICKET_ROUTED), at(60))
    routed = make_state("z:1", 0, team="billing", routed=2 * H).model_copy(update={"revision": 2})
    state.apply(envelope(routed, 2 * H, EventType.TICKET_ROUTED), at(2 * H))
    assert ttr(state) == (1, 2 * H)


def test_a_ticket_first_seen_with_a_team_uses_its_routed_at() -> None:
    # Seen first long after it was routed (its earlier events in another partition, say).
    state = BacklogState()
    st = make_state("z:1", 0, team="billing", routed=600).model_copy(update={"revision": 7})
    state.apply(envelope(st, 5 * H), at(5 * H))
    assert ttr(state) == (1, 600)
