"""The router's batch handler on a real database and broker: exactly-once effects."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from sqlalchemy import func, select

from services.router.models import RouterTicket, RoutingDecision
from services.router.routing.handler import NewTicket, RoutingHandler, ticket_values
from services.router.routing.lifecycle import RouteResult
from services.router.routing.messages import OUTBOX_OWNER
from services.router.slas.runtime import start_sla_runtime
from shared.db.models import OutboxMessage
from shared.db.outbox import outbox_row
from shared.events import (
    EventEnvelope,
    EventType,
    Priority,
    RoutingPayload,
    TicketSnapshot,
    TicketState,
    TicketStatus,
    routing_event,
    ticket_event,
)
from shared.kafka.consumer import ConsumedEvent, PoisonMessage
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings, RouterSettings
from tests.kafka_reading import read_records
from tests.unit.foundation.test_consumer_loop import FakeConsumer, FakeProducer, make_loop, run_until
from tests.waiting import wait_for

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def route(snapshot, source):
    team = "access" if "vpn" in snapshot.subject.lower() else None
    return RouteResult(team=team, rule="vpn" if team else None, ruleset_version=1, reasons=["test rule"])


def test_a_new_ticket_has_exactly_the_ticket_tables_columns():
    columns = {column.key for column in RouterTicket.__table__.columns}
    assert [f.name for f in dataclasses.fields(NewTicket)] == list(ticket_values(NewTicket("k", "s", "1")))
    assert set(ticket_values(NewTicket("k", "s", "1"))) == columns


def consumed(envelope: EventEnvelope, offset: int = 0) -> ConsumedEvent:
    return ConsumedEvent(envelope, "tickets", 0, offset)


async def read_topic(bootstrap: str, topic: str, expect: int) -> list[EventEnvelope]:
    # A further 0.3 s without records proves nothing else arrives.
    records = await read_records(bootstrap, topic, expect, idle_s=0.3, timeout_s=5.0)
    return [EventEnvelope.from_bytes(record.value) for record in records]


async def decisions_for(sessions, key: str) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(RoutingDecision).where(RoutingDecision.ticket_key == key)
            )
            or 0
        )


class BrokenProducer:
    """Acknowledges nothing: like a crash right after the database commit."""

    async def partitions_for(self, topic):  # the first thing publishing asks the broker
        raise ConnectionError("broker gone")


def vpn_ticket() -> EventEnvelope:
    return ticket_event(
        EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=uuid.uuid4().hex, subject="vpn"), NOW
    )


async def crash_between_commit_and_publish(sessions, settings: CommonSettings, event: ConsumedEvent) -> None:
    """A router that stores its decision for ``event`` and dies before publishing it."""
    crashed = RoutingHandler(
        sessions, BrokenProducer(), settings.topic_routing_events, lambda: route, lambda: NOW
    )
    crashed.outbox.dirty = False
    with contextlib.suppress(ConnectionError):
        await crashed([event])


async def test_redelivered_batch_has_no_second_effect(sessions, settings_kwargs):
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        handler = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW
        )
        external_id = uuid.uuid4().hex
        event = ticket_event(
            EventType.TICKET_CREATED,
            "api",
            TicketSnapshot(external_id=external_id, subject="VPN broken"),
            NOW,
        )
        await handler([consumed(event)])
        await handler([consumed(event)])  # redelivery after a crash before the commit
        key = event.ticket_key
        assert await decisions_for(sessions, key) == 1
        published = [
            e
            for e in await read_topic(settings.kafka_bootstrap_servers, settings.topic_routing_events, 1)
            if e.ticket_key == key
        ]
        assert [e.type for e in published] == [EventType.TICKET_ROUTED]
        state = published[0].routing().state
        assert state.team == "access" and state.revision == 1 and state.status == TicketStatus.OPEN
        async with sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.team == "access" and row.revision == 1
            assert (
                await session.scalar(
                    select(func.count()).select_from(OutboxMessage).where(OutboxMessage.key == key)
                )
                == 0
            )
    finally:
        await producer.stop()


async def test_events_left_in_the_outbox_are_published_by_the_next_handler(sessions, settings_kwargs):
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()

    try:
        event = vpn_ticket()
        await crash_between_commit_and_publish(sessions, settings, consumed(event))
        assert await decisions_for(sessions, event.ticket_key) == 1  # the decision is durable

        restarted = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW
        )
        await restarted([consumed(event)])  # redelivered: skipped, but the outbox is flushed first
        published = [
            e
            for e in await read_topic(settings.kafka_bootstrap_servers, settings.topic_routing_events, 1)
            if e.ticket_key == event.ticket_key
        ]
        assert [e.type for e in published] == [EventType.TICKET_ROUTED]
        assert await decisions_for(sessions, event.ticket_key) == 1
    finally:
        await producer.stop()


async def test_one_batch_with_several_events_of_one_ticket_keeps_their_order(sessions, settings_kwargs):
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        handler = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW
        )
        external_id = uuid.uuid4().hex
        created = ticket_event(
            EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=external_id, subject="vpn"), NOW
        )
        solved = ticket_event(
            EventType.TICKET_STATUS_CHANGED,
            "api",
            TicketSnapshot(external_id=external_id, status=TicketStatus.SOLVED),
            NOW,
        )
        reopened = ticket_event(
            EventType.TICKET_STATUS_CHANGED,
            "api",
            TicketSnapshot(external_id=external_id, status=TicketStatus.OPEN),
            NOW,
        )
        await handler([consumed(created, 0), consumed(solved, 1), consumed(reopened, 2)])
        published = [
            e
            for e in await read_topic(settings.kafka_bootstrap_servers, settings.topic_routing_events, 3)
            if e.ticket_key == created.ticket_key
        ]
        assert [e.type for e in published] == [
            EventType.TICKET_ROUTED,
            EventType.TICKET_RESOLVED,
            EventType.TICKET_REOPENED,
        ]
        assert [e.routing().state.revision for e in published] == [1, 2, 3]
        # the subject from the first event survives the partial later snapshots
        async with sessions() as session:
            row = await session.get(RouterTicket, created.ticket_key)
            assert row is not None and row.snapshot["subject"] == "vpn" and row.status == "open"
            # created and changed twice in one batch: one row, inserted with the final state
            assert (row.revision, row.team, row.routed_at is not None) == (3, "access", True)
    finally:
        await producer.stop()


async def test_a_surviving_router_relays_a_dead_peers_outbox_once_it_takes_over(sessions, settings_kwargs):
    """Two routers: one dies between its database commit and its publish. The other one, long past
    its own start-up flush, gets the partitions and must publish the dead one's events."""
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()

    try:
        survivor = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW
        )
        await survivor([consumed(vpn_ticket())])  # its start-up flush is behind it
        lost = vpn_ticket()
        await crash_between_commit_and_publish(sessions, settings, consumed(lost, offset=1))

        assert await survivor.on_assign({TopicPartition(settings.topic_ticket_events, 0)}) == {}
        await survivor([consumed(lost, offset=1)])  # redelivered to the survivor: already decided
        published = [
            e
            for e in await read_topic(settings.kafka_bootstrap_servers, settings.topic_routing_events, 2)
            if e.ticket_key == lost.ticket_key
        ]
        assert [e.type for e in published] == [EventType.TICKET_ROUTED]
        assert await decisions_for(sessions, lost.ticket_key) == 1
    finally:
        await producer.stop()


async def outbox_rows(sessions, key: str) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.key == key)
        return int(await session.scalar(query) or 0)


async def test_a_dead_peers_scanner_rows_go_out_at_the_survivors_next_tick_without_a_ticket_event(
    sessions, settings_kwargs
):
    """A router's SLA scanner dies between its commit and its publish. Its events answer no ticket
    event, so no redelivery brings the survivor's batch handler to them, and on a quiet system no
    batch comes at all. Wired as the router's lifespan wires them, the survivor's handler and
    scanner share one outbox writer: the rebalance marks it, and the scanner's next tick relays."""
    settings = RouterSettings(**settings_kwargs, router_timer_poll_s=0.1)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    runtime = await start_sla_runtime(settings, sessions, producer)
    try:
        survivor = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW,
            options=runtime.handler_options, outbox=runtime.outbox,
        )  # fmt: skip
        await wait_for(lambda: not runtime.outbox.dirty, timeout_s=10)  # the start-up relay is behind it
        # What the dead scanner committed and never published: an SLA warning.
        payload = RoutingPayload(
            state=TicketState(
                ticket_key=f"api:{uuid.uuid4().hex}", source="api", revision=2, status=TicketStatus.OPEN,
                team="access", priority=Priority.P2, created_at=NOW,
            ),
            reasons=["SLA resolution at risk"],
        )  # fmt: skip
        warning = routing_event(EventType.SLA_WARNING, payload, NOW, uuid.uuid4())
        async with sessions() as session, session.begin():
            session.add(outbox_row(OUTBOX_OWNER, settings.topic_routing_events, warning))
        await asyncio.sleep(0.5)  # five ticks: nothing says the outbox holds anything
        assert await outbox_rows(sessions, warning.ticket_key) == 1

        assert await survivor.on_assign({TopicPartition(settings.topic_ticket_events, 0)}) == {}
        # Relayed by the scanner: no batch came.
        await wait_for(lambda: not runtime.outbox.dirty, timeout_s=10)
        assert await outbox_rows(sessions, warning.ticket_key) == 0
        published = await read_topic(settings.kafka_bootstrap_servers, settings.topic_routing_events, 1)
        # (The database is the test session's: the scanner fires earlier tests' due timers too.)
        mine = [(e.event_id, e.type) for e in published if e.ticket_key == warning.ticket_key]
        assert mine == [(warning.event_id, EventType.SLA_WARNING)]
    finally:
        await runtime.stop()
        await producer.stop()


async def test_a_rules_tags_are_said_in_its_reasons_and_not_added_to_the_ticket(sessions, settings_kwargs):
    """A rule's add_tags left no trace at all: the simulation showed them, routing dropped them."""
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()

    def tagging(snapshot, source):
        if "vpn" not in snapshot.subject.lower():
            return RouteResult(team=None)
        return RouteResult(team="access", rule="vip", ruleset_version=1, reasons=["test rule"], tags=["vip"])

    try:
        handler = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: tagging, lambda: NOW
        )
        snapshot = TicketSnapshot(external_id=uuid.uuid4().hex, subject="VPN broken", tags=["network", "vip"])
        routed = ticket_event(EventType.TICKET_CREATED, "api", snapshot, NOW)
        waiting = ticket_event(
            EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=uuid.uuid4().hex, subject="?"), NOW
        )
        await handler([consumed(routed), consumed(waiting, 1)])
        # The ticket in triage is routed by a later update: the rule's tags come with that.
        update = ticket_event(
            EventType.TICKET_UPDATED,
            "api",
            TicketSnapshot(external_id=waiting.payload["external_id"], subject="vpn after all"),
            NOW,
        )
        await handler([consumed(update, 2)])
        async with sessions() as session:
            first = await session.get(RouterTicket, routed.ticket_key)
            later = await session.get(RouterTicket, waiting.ticket_key)
            reasons = (
                await session.scalars(
                    select(RoutingDecision.reasons).where(
                        RoutingDecision.ticket_key.in_([routed.ticket_key, waiting.ticket_key])
                    )
                )
            ).all()
        # Recorded with the decision, not added to the ticket as the source sent it (replays
        # evaluate that, and no rule of one evaluation sees another's tags).
        assert first is not None and first.snapshot["tags"] == ["network", "vip"]
        assert later is not None and later.snapshot.get("tags", []) == []
        assert sum("tagged vip" in r for r in reasons) == 1  # the first had it already
    finally:
        await producer.stop()


async def test_a_routing_event_on_the_tickets_topic_is_dead_lettered_with_the_reason(
    sessions, settings_kwargs
):
    """The handler kept ticket events only and dropped the rest of a batch without a trace: a
    routing event published to the tickets topic by mistake was committed past, seen by no one.
    The router consumes the tickets topic only and can never act on one, so it is poison: the
    consumer loop dead-letters it with the reason and the ticket events beside it are routed."""
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        handler = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW
        )
        first, second = vpn_ticket(), vpn_ticket()
        payload = RoutingPayload(
            state=TicketState(
                ticket_key=first.ticket_key, source="api", revision=1, status=TicketStatus.OPEN,
                team="access", priority=Priority.P3, created_at=NOW,
            ),
        )  # fmt: skip
        stray = routing_event(EventType.TICKET_ROUTED, payload, NOW, uuid.uuid4())

        with pytest.raises(PoisonMessage, match=r"ticket\.routed is a routing event"):
            await handler([consumed(stray)])

        consumer, dead = FakeConsumer([first.to_bytes(), stray.to_bytes(), second.to_bytes()]), FakeProducer()
        await run_until(make_loop(consumer, dead, handler), lambda: consumer.committed, timeout=20)
        assert [EventEnvelope.from_bytes(value).event_id for _, value, _ in dead.sent] == [stray.event_id]
        reason = dict(dead.sent[0][2])["dlq.reason"].decode()
        assert "rejected" in reason and "routing event" in reason and "ticket.routed" in reason
        assert await decisions_for(sessions, first.ticket_key) == 1
        assert await decisions_for(sessions, second.ticket_key) == 1
    finally:
        await producer.stop()
