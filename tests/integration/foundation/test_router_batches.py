"""A batch routes its tickets as one-event batches would, with the real bound policy (text work
prepared for the batch, early beside the reads on PostgreSQL), on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.classifiers.enrichment import NO_CLASSIFIERS
from services.router.models import RouterTicket, RoutingDecision
from services.router.routing.handler import RoutingHandler
from services.router.routing.policy import BoundRoute, RoutingPolicy
from services.router.rules import compile_ruleset, parse_ruleset
from shared.db.dialect import is_postgres
from shared.events import EventEnvelope, EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
RULES = {
    "rules": [
        {
            "id": "vpn",
            "name": "VPN",
            "when": {"field": "text", "op": "contains", "value": "vpn"},
            "actions": {"assign_team": "network"},
        },
        {
            "id": "german",
            "name": "German speakers",
            "when": {"field": "language", "op": "equals", "value": "de"},
            "actions": {"assign_team": "dach"},
        },
    ],
}


class RecordingProducer:
    """Acknowledges every send at once; the handler's publishing is tested elsewhere."""

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class RecordingRoute(BoundRoute):
    def __init__(self, policy: RoutingPolicy) -> None:
        super().__init__(policy, NO_CLASSIFIERS)
        self.calls: list[list[tuple[str, str]]] = []

    def prepare(self, texts: Sequence[tuple[str, str]]) -> None:
        self.calls.append(list(texts))
        super().prepare(texts)


def events(run: str) -> list[list[EventEnvelope]]:
    def created(n: int, subject: str, description: str) -> EventEnvelope:
        snapshot = TicketSnapshot(external_id=f"{run}-{n}", subject=subject, description=description)
        return ticket_event(EventType.TICKET_CREATED, "api", snapshot, NOW)

    def updated(n: int, **fields: str) -> EventEnvelope:
        return ticket_event(
            EventType.TICKET_UPDATED, "api", TicketSnapshot(external_id=f"{run}-{n}", **fields), NOW
        )

    return [
        [
            created(1, "VPN down", "The VPN client rejects my password since this morning!!"),
            created(2, "Drucker", "Der Drucker im zweiten Stock druckt seit gestern nur leere Seiten."),
            created(3, "Question", "Where do I find the travel expense form?"),
        ],
        [
            # Ticket 3 waits in triage: its update is routed on the merged text (prepared after the
            # reads); ticket 1 has a team, its update is not routed again.
            updated(3, description="Die Reisekostenabrechnung finde ich nicht, bitte helfen Sie mir."),
            updated(1, description="Still down, the whole office cannot connect."),
            created(4, "URGENT: VPN", "NOTHING WORKS FOR ANYONE"),
        ],
    ]


async def route_batches(
    sessions: async_sessionmaker[AsyncSession], batches: list[list[EventEnvelope]]
) -> list[RecordingRoute]:
    ruleset = parse_ruleset(RULES)
    ruleset.version = 2
    policy = RoutingPolicy(compile_ruleset(ruleset), 2, lambda: NOW)
    routes: list[RecordingRoute] = []

    def provide() -> RecordingRoute:
        routes.append(RecordingRoute(policy))
        return routes[-1]

    handler = RoutingHandler(sessions, RecordingProducer(), "routing", provide, lambda: NOW)
    for offset, batch in enumerate(batches):
        await handler([ConsumedEvent(event, "tickets", 0, offset) for event in batch])
    return routes


async def outcome(sessions: async_sessionmaker[AsyncSession], run: str) -> dict[str, Any]:
    async with sessions() as session:
        tickets = (
            await session.scalars(select(RouterTicket).where(RouterTicket.external_id.like(f"{run}-%")))
        ).all()
        decisions = (
            await session.scalars(
                select(RoutingDecision)
                .where(RoutingDecision.ticket_key.in_([t.ticket_key for t in tickets]))
                .order_by(RoutingDecision.id)
            )
        ).all()
    number = {t.ticket_key: t.external_id.split("-")[-1] for t in tickets}
    return {
        "tickets": sorted(
            (number[t.ticket_key], t.team, t.priority, t.language, t.status, t.revision) for t in tickets
        ),
        "decisions": [
            (number[d.ticket_key], d.kind, d.team, d.priority, d.rule, d.reasons) for d in decisions
        ],
    }


async def test_batched_routing_equals_one_event_at_a_time(sessions: async_sessionmaker[AsyncSession]):
    batched, single = uuid.uuid4().hex, uuid.uuid4().hex
    routes = await route_batches(sessions, events(batched))
    await route_batches(sessions, [[event] for batch in events(single) for event in batch])
    got, want = await outcome(sessions, batched), await outcome(sessions, single)
    assert got == want
    teams = {number: team for number, team, *_ in got["tickets"]}
    assert teams == {"1": "network", "2": "dach", "3": "dach", "4": "network"}
    # Every ticket routed in a batch had its text work prepared with the batch, none alone.
    first, second = routes
    prepared = {text for call in first.calls for text in call}
    assert {subject for subject, _ in prepared} == {"VPN down", "Drucker", "Question"}
    merged = ("Question", "Die Reisekostenabrechnung finde ich nicht, bitte helfen Sie mir.")
    async with sessions() as session:
        postgres = is_postgres(session)
    if postgres:
        # Before the reads: the created ticket's text; after them, what the reads showed.
        assert second.calls == [[("URGENT: VPN", "NOTHING WORKS FOR ANYONE")], [merged, second.calls[0][0]]]
    else:
        assert second.calls == [[merged, ("URGENT: VPN", "NOTHING WORKS FOR ANYONE")]]
