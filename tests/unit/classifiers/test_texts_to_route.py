"""Which texts a batch prepares: new tickets and tickets in triage, merged as the handler merges."""

from __future__ import annotations

from services.router.models import RouterTicket
from services.router.routing.handler import texts_to_route
from shared.events import EventType, TicketSnapshot, ticket_event


def event(external_id: str, kind: EventType = EventType.TICKET_CREATED, **fields: str):
    return ticket_event(kind, "api", TicketSnapshot(external_id=external_id, **fields))


def stored(key: str, team: str | None, subject: str, description: str) -> RouterTicket:
    return RouterTicket(ticket_key=key, team=team, snapshot={"subject": subject, "description": description})


def test_new_and_triaged_tickets_are_prepared_routed_ones_are_not():
    new = event("1", subject="VPN down", description="since 9:00")
    triaged = event("2", EventType.TICKET_UPDATED, description="more detail")
    routed = event("3", EventType.TICKET_UPDATED, subject="printer jam")
    tickets = {
        triaged.ticket_key: stored(triaged.ticket_key, None, "Laptop", "black screen"),
        routed.ticket_key: stored(routed.ticket_key, "hardware", "Printer", "jam"),
    }
    assert texts_to_route([new, triaged, routed], tickets) == [
        ("VPN down", "since 9:00"),
        ("Laptop", "more detail"),  # the stored subject, the event's description
    ]


def test_a_second_event_of_a_new_ticket_merges_onto_the_first():
    first = event("7", subject="Mail", description="cannot send")
    second = event("7", EventType.TICKET_UPDATED, description="cannot send or receive")
    assert texts_to_route([first, second], {}) == [
        ("Mail", "cannot send"),
        ("Mail", "cannot send or receive"),
    ]
