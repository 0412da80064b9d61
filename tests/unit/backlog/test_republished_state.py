"""A routing event re-published (the router's outbox after a crash) once its event id has left the
shard's window of seen ids (``seen_event_ids``, which ticket events fill too): the state it carries
is the one the shard holds, at the same revision, and counts nothing a second time."""

from __future__ import annotations

import uuid

from services.metrics.backlog import BacklogConfig, BacklogState
from shared.events import EventType, Priority, RoutingPayload, TicketSnapshot, routing_event, ticket_event

from .helpers import at, make_state, scrape

TECH = (("team", "tech"),)


def test_an_escalation_re_published_after_its_id_was_forgotten_counts_once() -> None:
    state = BacklogState(BacklogConfig(seen_event_ids=3))
    routed = make_state("z:1", 0, team="tech", priority="P3", routed=10).model_copy(update={"revision": 1})
    state.apply(
        routing_event(EventType.TICKET_ROUTED, RoutingPayload(state=routed), at(10), uuid.uuid4()), at(10)
    )
    escalated = routed.model_copy(update={"revision": 2, "priority": Priority.P1})
    event = routing_event(EventType.TICKET_ESCALATED, RoutingPayload(state=escalated), at(20), uuid.uuid4())
    state.apply(event, at(20))
    for i in range(5):  # other tickets' events push its id out of the window
        state.apply(
            ticket_event(EventType.TICKET_CREATED, "z", TicketSnapshot(external_id=str(i)), at(30)), at(30)
        )
    before = scrape(state)
    assert before[("tickets_escalated_total", TECH)] == 1
    state.apply(event, at(40))
    after = scrape(state)
    assert after[("tickets_escalated_total", TECH)] == 1
    assert {k: v for k, v in after.items() if "_total" in k[0]} == {
        k: v for k, v in before.items() if "_total" in k[0]
    }


def test_escalations_of_states_without_revisions_still_count() -> None:
    # Revision 0 is no router's (they number from 1): states without one are not taken as repeats.
    state = BacklogState()
    st = make_state("z:1", 0, team="tech")
    state.apply(
        routing_event(EventType.TICKET_ROUTED, RoutingPayload(state=st), at(10), uuid.uuid4()), at(10)
    )
    for t in (20, 30):
        event = routing_event(EventType.TICKET_ESCALATED, RoutingPayload(state=st), at(t), uuid.uuid4())
        state.apply(event, at(t))
    assert scrape(state)[("tickets_escalated_total", TECH)] == 2
