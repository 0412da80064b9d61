"""A ticket's events reach the broker in the order intake answered them, through the outbox relay
and across replicas: the publisher with a scripted producer (when each send is answered, and how)
on the real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.held import gate_connections, ledger_connections
from services.intake.publisher import Delivery, EventPublisher
from shared.db.models import OutboxMessage
from shared.db.outbox import outbox_row
from shared.events import EventEnvelope, EventType, TicketSnapshot, derived_event_id, ticket_event

Answer = tuple[float, Exception | None]  # a send is answered after this many seconds, with this error


class Broker:
    """What the scripted producers' sends stored, in the order they were acknowledged."""

    def __init__(self) -> None:
        self.log: list[EventEnvelope] = []

    def sequence(self, ticket_key: str) -> list[int]:
        return [e.ticket().custom_fields["seq"] for e in self.log if e.ticket_key == ticket_key]


class _Client:
    async def fetch_all_metadata(self) -> None:  # the relay's reachability check
        return None


class ScriptedProducer:
    """``answer(envelope)`` says when and how each send is answered; ``refuse`` fails sends at once."""

    def __init__(self, broker: Broker, answer: Callable[[EventEnvelope], Answer]) -> None:
        self.broker = broker
        self.answer = answer
        self.refuse: Exception | None = None
        self.client = _Client()

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        if self.refuse is not None:
            raise self.refuse
        envelope = EventEnvelope.from_bytes(value)
        delay, error = self.answer(envelope)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def reply() -> None:
            if error is None:
                self.broker.log.append(envelope)
                future.set_result(None)
            else:
                future.set_exception(error)

        asyncio.get_running_loop().call_later(delay, reply)
        return future


def update(external_id: str, seq: int, delivery: str) -> EventEnvelope:
    snapshot = TicketSnapshot(external_id=external_id, subject="s", custom_fields={"seq": seq})
    event_id = derived_event_id("ord", delivery, "0")
    return ticket_event(EventType.TICKET_UPDATED, "ord", snapshot, event_id=event_id)


@pytest.fixture
async def make_publisher(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[[ScriptedProducer], EventPublisher]]:
    """Replicas of intake sharing one outbox (their own owner, apart from other tests'); a publish
    timeout of 0.2 s."""
    held: list[Any] = []
    owner = "ord-" + uuid.uuid4().hex[:12]

    def make(producer: ScriptedProducer) -> EventPublisher:
        ledger, gate = ledger_connections(database_url), gate_connections(database_url)
        held.extend([ledger, gate])
        return EventPublisher(producer, sessions, ledger, gate, "t", 0.2, owner=owner)

    yield make
    for connections in held:
        await connections.close()


async def outbox_left(sessions: async_sessionmaker[AsyncSession], owner: str) -> list[OutboxMessage]:
    async with sessions() as session:
        return list((await session.scalars(select(OutboxMessage).where(OutboxMessage.owner == owner))).all())


@pytest.mark.parametrize("request_times_out_meanwhile", [False, True])
async def test_a_failed_row_of_a_relay_wave_is_not_passed_by_the_tickets_next_row(
    request_times_out_meanwhile: bool,
    make_publisher: Callable[[ScriptedProducer], EventPublisher],
    sessions: async_sessionmaker[AsyncSession],
    unique: str,
) -> None:
    broker = Broker()
    t1, t2, late = f"{unique}-1", f"{unique}-2", f"{unique}-late"
    failed_once: list[str] = []

    def answer(envelope: EventEnvelope) -> Answer:
        if (
            envelope.ticket_key == f"ord:{t1}"
            and envelope.ticket().custom_fields["seq"] == 1
            and not failed_once
        ):
            failed_once.append("t1#1")
            return 0.3, RuntimeError("NotLeaderForPartition")  # the relay's first send of T1#1
        if envelope.ticket_key == f"ord:{late}":
            return 0.25, None  # a request's send: past the 0.2 s publish timeout, then delivered
        return (0.3 if envelope.ticket_key == f"ord:{t2}" else 0.01), None

    publisher = make_publisher(ScriptedProducer(broker, answer))
    # A request passes the gate (outbox empty) and sends; it times out and parks, its send in limbo.
    request = asyncio.create_task(
        publisher.accept([update(late, 0, "late")]) if request_times_out_meanwhile else asyncio.sleep(0)
    )
    await asyncio.sleep(0.02)
    # Meanwhile another replica parked T1#1, T1#2 and T2#1.
    async with sessions() as session, session.begin():
        session.add_all(
            [
                outbox_row(publisher.owner, "t", update(t, seq, f"{t}#{seq}"))
                for t, seq in ((t1, 1), (t1, 2), (t2, 1))
            ]
        )
    # The relay's waves: T1#1 and T2#1, then T1#2. T1#1 fails while the request's late send is
    # delivered: the wave's count of deliveries is full, but not with its own rows.
    await publisher.relay_once()
    outcome = await request
    if request_times_out_meanwhile:  # parked once its send timed out, then delivered late
        assert outcome is not None and outcome.delivery is Delivery.QUEUED
    for _ in range(5):
        await publisher.relay_once()
    assert await outbox_left(sessions, publisher.owner) == []
    assert broker.sequence(f"ord:{t1}") == [1, 2]


async def test_a_duplicate_answer_is_held_like_the_park_it_found_so_the_next_update_cannot_pass_it(
    make_publisher: Callable[[ScriptedProducer], EventPublisher], unique: str
) -> None:
    broker = Broker()
    x = make_publisher(ScriptedProducer(broker, lambda e: (0.001, None)))  # its broker link is down
    y = make_publisher(ScriptedProducer(broker, lambda e: (0.001, None)))
    x_producer = x.producer
    assert isinstance(x_producer, ScriptedProducer)
    x_producer.refuse = ConnectionError("X cannot reach the broker")
    first, second = update(unique, 1, f"{unique}-A"), update(unique, 2, f"{unique}-B")
    committed = asyncio.Event()
    hold = x.gate.hold_after_park

    async def noted_hold(committed_at: float) -> None:
        committed.set()  # X's park of A has committed; its 2xx is being held
        await hold(committed_at)

    x.gate.hold_after_park = noted_hold  # type: ignore[method-assign]
    for replica in (x, y):  # connections opened before the scenario: a first connect is slow
        await replica.ledger.accepted("ord", "warm-up")
        await replica.gate.outbox_empty()
    y.gate.forget()
    assert await y.gate.outbox_empty()  # Y's shared "outbox empty" read, a moment before A's park
    answer_a = asyncio.create_task(x.accept([first], dedupe=("ord", "A")))
    await committed.wait()
    # The sender's retry of A reaches Y and is a duplicate; only then does the sender send B.
    assert (await y.accept([first], dedupe=("ord", "A"))).duplicate
    assert (await y.accept([second], dedupe=("ord", "B"))).delivery is not None
    assert (await answer_a).delivery is Delivery.QUEUED
    x_producer.refuse = None
    for _ in range(3):
        await x.relay_once()
    # B went through Y's gate after A's park was visible: parked behind A, not published ahead.
    assert broker.sequence(f"ord:{unique}") == [1, 2]


async def test_the_relay_holds_a_bounded_amount_of_events_however_large_they_are(
    make_publisher: Callable[[ScriptedProducer], EventPublisher],
    sessions: async_sessionmaker[AsyncSession],
    unique: str,
) -> None:
    """The relay read 500 rows at a time and sent them all before the first acknowledgement:
    with events near their limit of 960 KiB (a long description in three-byte characters is
    ~600 kB), ~470 MB in rows and as much again in the producer, above intake's memory limit (512
    MiB, deploy/k8s): killed while draining, it would start over with the same rows. What it
    reads and has in flight at once is bounded in bytes, and the outbox still drains in order."""
    broker = Broker()
    in_flight = [0, 0]  # bytes sent and not yet answered; the most at any time

    def answer(envelope: EventEnvelope) -> Answer:
        return 0.001, None

    producer = ScriptedProducer(broker, answer)
    send = producer.send

    async def counted(topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        future = await send(topic, value, key)
        in_flight[0] += len(value)
        in_flight[1] = max(in_flight)

        def answered(_: object) -> None:
            in_flight[0] -= len(value)

        future.add_done_callback(answered)
        return future

    producer.send = counted  # type: ignore[method-assign]
    publisher = make_publisher(producer)
    padding = "語" * 200_000  # ~600 kB as an event
    async with sessions() as session, session.begin():
        for n in range(100):  # 60 MB: tickets 0-79, the first 20 of them twice, in order
            snapshot = TicketSnapshot(
                external_id=f"{unique}-{n % 80}", subject="s", description=padding, custom_fields={"seq": n}
            )
            event = ticket_event(EventType.TICKET_UPDATED, "ord", snapshot, event_id=uuid.uuid4())
            session.add(outbox_row(publisher.owner, "t", event))
    for _ in range(10):
        await publisher.relay_once()
    assert await outbox_left(sessions, publisher.owner) == []
    assert in_flight[1] <= 32 * 1024 * 1024, in_flight[1]
    for t in range(20):
        assert broker.sequence(f"ord:{unique}-{t}") == [t, t + 80]


async def test_a_late_delivery_deletes_only_its_own_row_when_another_replica_relayed_it(
    make_publisher: Callable[[ScriptedProducer], EventPublisher],
    sessions: async_sessionmaker[AsyncSession],
    unique: str,
) -> None:
    """X's send times out and X parks the event, its send in limbo; Y's relay publishes the row and
    deletes it. On SQLite a row id was the largest id left plus one, so the next park took the
    deleted row's id, and X, learning that its late send was delivered, deleted that row by id: a
    ticket answered 202 queued, never published. Row ids are never used twice."""
    broker = Broker()
    x = make_publisher(ScriptedProducer(broker, lambda e: (0.3, None)))  # past X's timeout of 0.2 s
    y_producer = ScriptedProducer(broker, lambda e: (0.001, None))
    y = make_publisher(y_producer)
    assert (await x.accept([update(f"{unique}-a", 1, f"{unique}-a")])).delivery is Delivery.QUEUED
    assert x._limbo  # its send is still unanswered
    await y.relay_once()  # Y publishes X's row and deletes it
    assert await outbox_left(sessions, x.owner) == []
    y_producer.refuse = ConnectionError("Y cannot reach the broker")
    assert (await y.accept([update(f"{unique}-b", 1, f"{unique}-b")])).delivery is Delivery.QUEUED
    await x.relay_once()  # X's late send was delivered: X deletes its row, and only its row
    y_producer.refuse = None
    for _ in range(3):
        await y.relay_once()
    assert broker.sequence(f"ord:{unique}-b") == [1]
