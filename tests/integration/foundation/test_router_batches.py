"""A batch routes its tickets as one-event batches would, with the real bound policy (text work
prepared for the batch, early beside the reads on PostgreSQL; routing events built beside the
tickets' writes there), on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.router.classifiers.enrichment import NO_CLASSIFIERS
from services.router.models import RouterTicket, RoutingDecision
from services.router.routing.handler import RoutingHandler
from services.router.routing.messages import BUILD_SLICE, Emitted, RoutingMessages
from services.router.routing.policy import BoundRoute, Evaluation, RoutingPolicy
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


class RecordingBatch(list[tuple[bytes, bytes]]):
    def append(self, *, key: bytes, value: bytes, timestamp: None) -> bool:  # type: ignore[override]
        super().append((key, value))
        return True


class RecordingProducer:
    """Keeps what is sent (one partition) and acknowledges it at once; the handler's publishing is
    tested elsewhere."""

    def __init__(self) -> None:
        self.sent: list[EventEnvelope] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch()

    async def send_batch(self, batch: RecordingBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
        for key, value in batch:
            envelope = EventEnvelope.from_bytes(value)
            assert key == envelope.ticket_key.encode()
            self.sent.append(envelope)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class RecordingPolicy(RoutingPolicy):
    """Logs which tickets' rules are evaluated, and in which phase of the test."""

    def __init__(self, phase: list[str]) -> None:
        ruleset = parse_ruleset(RULES)
        ruleset.version = 2
        super().__init__(compile_ruleset(ruleset), 2, lambda: NOW)
        self.phase = phase
        self.evaluated: list[tuple[str, str]] = []

    def evaluate(self, snapshot: TicketSnapshot, *args: Any, **kwargs: Any) -> Evaluation:
        self.evaluated.append((self.phase[0], snapshot.subject))
        return super().evaluate(snapshot, *args, **kwargs)


class RecordingRoute(BoundRoute):
    def __init__(self, policy: RoutingPolicy, phase: list[str]) -> None:
        super().__init__(policy, NO_CLASSIFIERS)
        self.phase = phase  # what the test is doing: announcing a batch, or handling one
        self.bound_in = phase[0]
        self.calls: list[list[tuple[str, str]]] = []
        self.call_phases: list[str] = []

    def prepare(self, texts: Sequence[tuple[str, str]]) -> None:
        self.calls.append(list(texts))
        self.call_phases.append(self.phase[0])
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


def recording_handler(
    sessions: async_sessionmaker[AsyncSession], producer: RecordingProducer
) -> tuple[RoutingHandler, list[str], list[RecordingRoute]]:
    """A handler whose route functions record what they do; the test sets ``phase[0]`` to say
    what it is doing, and finds every route bound, in order, in the returned list."""
    phase = [""]
    policy = RecordingPolicy(phase)
    routes: list[RecordingRoute] = []

    def provide() -> RecordingRoute:
        routes.append(RecordingRoute(policy, phase))
        return routes[-1]

    return RoutingHandler(sessions, producer, "routing", provide, lambda: NOW), phase, routes


async def route_batches(
    sessions: async_sessionmaker[AsyncSession], batches: list[list[EventEnvelope]], look_ahead: bool = False
) -> tuple[list[RecordingRoute], list[EventEnvelope]]:
    """Route the batches in order; with ``look_ahead`` as the consumer loop does under a backlog:
    each batch is announced (``prepare_next``) before the one before it is handled."""
    producer = RecordingProducer()
    handler, phase, routes = recording_handler(sessions, producer)
    # As the consumer loop passes them: decoded, with the snapshot the decoding validated.
    consumed = [
        [ConsumedEvent(event, "tickets", 0, offset, ticket) for event, ticket in map(decode, batch)]
        for offset, batch in enumerate(batches)
    ]
    for turn, batch in enumerate(consumed):
        if look_ahead and turn + 1 < len(consumed):
            phase[0] = f"announcing {turn + 1}"
            handler.prepare_next(consumed[turn + 1])
        phase[0] = f"handling {turn}"
        await handler(batch)
    return routes, producer.sent


def decode(event: EventEnvelope) -> tuple[EventEnvelope, TicketSnapshot | None]:
    return EventEnvelope.decode(event.to_bytes())


def published(sent: list[EventEnvelope], run: str) -> list[tuple[Any, ...]]:
    """The routing events in the order published, with the ticket's number for its key."""
    return [
        (
            e.ticket_key.split("-")[-1],
            e.type,
            e.routing().state.revision,
            e.routing().state.team,
            e.routing().rule,
        )
        for e in sent
        if e.ticket_key.startswith(f"api:{run}-")
    ]


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
    routes, sent_batched = await route_batches(sessions, events(batched))
    _, sent_single = await route_batches(sessions, [[event] for batch in events(single) for event in batch])
    got, want = await outcome(sessions, batched), await outcome(sessions, single)
    assert got == want
    # The same routing events, published in the order decided, with the ids stored as decisions.
    assert published(sent_batched, batched) == published(sent_single, single)
    assert [e.type for e in sent_batched] == [EventType(kind) for _, kind, *_ in got["decisions"]]
    async with sessions() as session:
        stored_ids = await session.scalars(
            select(RoutingDecision.event_id)
            .where(RoutingDecision.ticket_key.in_({e.ticket_key for e in sent_batched}))
            .order_by(RoutingDecision.id)
        )
        assert [str(e.event_id) for e in sent_batched] == list(stored_ids)
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


async def test_routing_events_are_built_while_the_tickets_are_written_on_postgres(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
):
    order: list[str] = []
    build = RoutingMessages.build

    def logged_build(self: RoutingMessages, emitted: Sequence[Emitted]) -> None:
        order.append(f"build {len(emitted)}")
        build(self, emitted)

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        for table in ("router_tickets", "routing_decisions", "outbox"):
            if sql.lstrip().startswith(f"INSERT INTO {table}"):
                order.append(f"insert {table}")

    monkeypatch.setattr(RoutingMessages, "build", logged_build)
    run = uuid.uuid4().hex
    batch = [
        ticket_event(
            EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=f"{run}-{n}", subject="VPN"), NOW
        )
        for n in range(BUILD_SLICE + 1)
    ]
    async with sessions() as session:
        postgres = is_postgres(session)
    event.listen(engine.sync_engine, "before_cursor_execute", statement)
    try:
        await route_batches(sessions, [batch])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", statement)
    built = [f"build {BUILD_SLICE}", "build 1"]
    writes = ["insert router_tickets", "insert routing_decisions", "insert outbox"]
    if postgres:
        # The tickets' insert is in flight before any routing event is built.
        assert order == [writes[0], *built, *writes[1:]]
    else:
        assert order == [*built, *writes]


async def test_a_batch_announced_ahead_routes_as_without_and_has_its_text_work_done_in_the_waits(
    sessions: async_sessionmaker[AsyncSession],
):
    plain, ahead = uuid.uuid4().hex, uuid.uuid4().hex
    _, sent_plain = await route_batches(sessions, events(plain))
    routes, sent_ahead = await route_batches(sessions, events(ahead), look_ahead=True)
    assert await outcome(sessions, ahead) == await outcome(sessions, plain)
    assert published(sent_ahead, ahead) == published(sent_plain, plain)
    async with sessions() as session:
        postgres = is_postgres(session)
    bound = {route.bound_in: route for route in routes}
    if not postgres:
        # SQLite's statements need the GIL the text work would hold: nothing to fill, no look-ahead.
        assert set(bound) == {"handling 0", "handling 1"}
        return
    # The second batch's route was bound when it was announced, and its created ticket's text was
    # prepared while the first batch waited on the database; in its turn only the triaged
    # ticket's merged text (known only after its reads) was left to do.
    assert set(bound) == {"handling 0", "announcing 1"}
    second = bound["announcing 1"]
    urgent = ("URGENT: VPN", "NOTHING WORKS FOR ANYONE")
    merged = ("Question", "Die Reisekostenabrechnung finde ich nicht, bitte helfen Sie mir.")
    calls = list(zip(second.call_phases, second.calls, strict=True))
    assert calls[0] == ("handling 0", [urgent])
    assert calls[-1] == ("handling 1", [merged, urgent])
    # Then its rules, in the same waits; in its turn it was routed with that evaluation.
    assert [(phase, subject) for phase, subject in policy_of(second).evaluated if subject == urgent[0]] == [
        ("handling 0", urgent[0])
    ]


def policy_of(route: BoundRoute) -> RecordingPolicy:
    assert isinstance(route.policy, RecordingPolicy)
    return route.policy


async def test_a_route_bound_for_a_batch_announced_before_a_rebalance_is_not_used(
    sessions: async_sessionmaker[AsyncSession],
):
    """The announced batch is dropped at the rebalance and fetched again: it is routed with a
    route bound in its turn (the rule set and the instant of then), not the one from before."""
    handler, phase, routes = recording_handler(sessions, RecordingProducer())
    run = uuid.uuid4().hex
    batch = [ConsumedEvent(event, "tickets", 0, 0, ticket) for event, ticket in map(decode, events(run)[0])]
    phase[0] = "announcing"
    handler.prepare_next(batch)
    await handler.on_assign({TopicPartition("tickets", 0)})
    phase[0] = "handling"
    await handler(batch)
    async with sessions() as session:
        postgres = is_postgres(session)
    # On PostgreSQL a route was bound when announced, and another in the turn; SQLite has no
    # look-ahead. Either way the batch was routed by a route bound in its turn.
    assert [route.bound_in for route in routes] == (["announcing", "handling"] if postgres else ["handling"])
    assert {number for number, *_ in (await outcome(sessions, run))["tickets"]} == {"1", "2", "3"}
