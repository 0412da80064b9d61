"""Pruning the router's ever-growing bookkeeping, on both databases: applied-event ids and
delivered write-backs older than the retention go, in chunks; everything else stays, and a
redelivery of a kept event is still recognised."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.deliveries import prune_deliveries
from services.router import retention
from services.router.classifiers.service import feedback_examples
from services.router.escalation.models import FiredTimer
from services.router.models import ClassifierFeedback, RouterTicket, RoutingDecision
from services.router.retention import (
    Retention,
    prune_feedback,
    prune_forever,
    prune_resolved_tickets,
    prune_router_tables,
)
from services.router.routing.handler import CONSUMER_NAME, RoutingHandler
from services.router.tickets.endpoints import router as tickets_router
from services.router.writeback.models import WritebackDelivery
from shared.auth import Role
from shared.db.dialect import is_postgres
from shared.db.models import ProcessedEvent
from shared.db.processed import claim_events
from shared.db.pruning import delete_in_chunks
from shared.events import EventEnvelope, EventType, TicketSnapshot, TicketStatus, ticket_event, utc_now
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.embedded import EmbeddedBroker
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings
from tests.conftest import unique_topics
from tests.integration.foundation.test_router_handler import route
from tests.integration.router_api.helpers import running_router
from tests.integration.router_sla.helpers import api_client
from tests.waiting import wait_until

RETENTION = timedelta(days=30)
PROCESSED = cast(Table, ProcessedEvent.__table__)


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


async def _claim(
    sessions: async_sessionmaker[AsyncSession], consumer: str, ids: list[str], age: timedelta
) -> None:
    async with sessions() as session, session.begin():
        assert await claim_events(session, consumer, ids, utc_now() - age) == set(ids)


async def _kept(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> set[str]:
    async with sessions() as session:
        return set(
            await session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_(ids)))
        )


async def test_chunks_delete_every_matching_row_and_no_other(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    doomed, spared = _ids(5), _ids(2)
    await _claim(sessions, "chunk-test", doomed + spared, timedelta(0))

    deleted = await delete_in_chunks(sessions, PROCESSED, ProcessedEvent.event_id.in_(doomed), chunk=2)

    assert deleted == 5  # three transactions: 2, 2, then a short 1
    assert await _kept(sessions, doomed + spared) == set(spared)
    assert await delete_in_chunks(sessions, PROCESSED, ProcessedEvent.event_id.in_(doomed), chunk=2) == 0


async def test_old_event_ids_go_and_recent_ones_still_catch_redeliveries(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old, recent, other_consumer = _ids(3), _ids(2), _ids(1)
    await _claim(sessions, CONSUMER_NAME, old, RETENTION + timedelta(days=1))
    await _claim(sessions, CONSUMER_NAME, recent, RETENTION - timedelta(days=1))
    await _claim(sessions, "someone-else", other_consumer, RETENTION + timedelta(days=1))

    pruned = await prune_router_tables(sessions, RETENTION)

    assert pruned["processed_events"] >= len(old)  # earlier tests' old rows may go too
    assert await _kept(sessions, old + recent + other_consumer) == set(recent + other_consumer)
    async with sessions() as session, session.begin():
        # The redelivery check still holds for what was kept.
        assert await claim_events(session, CONSUMER_NAME, recent, utc_now()) == set()


async def test_only_delivered_write_backs_past_the_retention_go(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    target = uuid.uuid4().int % 1_000_000_000
    long_ago, lately = utc_now() - RETENTION - timedelta(days=1), utc_now() - timedelta(hours=1)
    rows = {
        "delivered long ago": ("delivered", long_ago),
        "delivered lately": ("delivered", lately),
        "failed long ago": ("failed", long_ago),
        "pending long ago": ("pending", long_ago),
    }
    async with sessions() as session, session.begin():
        for name, (status, at) in rows.items():
            session.add(
                WritebackDelivery(
                    target_id=target,
                    event_id=name,
                    kind="ticket.routed",
                    ticket_key="t:1",
                    body="{}",
                    status=status,
                    next_attempt_at=at,
                )
            )

    await prune_router_tables(sessions, RETENTION)

    async with sessions() as session:
        left = set(
            await session.scalars(
                select(WritebackDelivery.event_id).where(WritebackDelivery.target_id == target)
            )
        )
    assert left == {"delivered lately", "failed long ago", "pending long ago"}


async def test_a_running_router_prunes_at_start_and_on_its_interval(
    broker: EmbeddedBroker, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    old = _ids(2)
    await _claim(sessions, CONSUMER_NAME, old, timedelta(days=2))
    resolved = f"prune-{uuid.uuid4().hex[:8]}:kept-whole"
    await _seed_tickets(sessions, {resolved: _ticket(resolved, TicketStatus.SOLVED, LONG_AGO)})
    example = await _seed_feedback(sessions, f"{resolved}:feedback", LONG_AGO)

    async with running_router(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        topic_partitions=1,
        router_dedup_retention_days=1,
        router_prune_interval_s=0.2,
        **unique_topics(),
    ):

        async def all_gone(ids: list[str]) -> bool:
            return not await _kept(sessions, ids)

        await wait_until(lambda: all_gone(old), timeout_s=10)
        # And again on its interval: ids that age past the retention while it runs go too.
        later = _ids(1)
        await _claim(sessions, CONSUMER_NAME, later, timedelta(days=2))
        await wait_until(lambda: all_gone(later), timeout_s=10)
    # Without ROUTER_RESOLVED_RETENTION_DAYS resolved tickets stay whole; without
    # ROUTER_FEEDBACK_RETENTION_DAYS feedback examples stay, however old.
    assert (await _rows(sessions, [resolved]))[resolved].pruned_at is None
    assert await _with_history(sessions, [resolved]) == {resolved}
    assert await _feedback_kept(sessions, [example]) == [example]


async def test_a_running_router_cuts_old_resolved_tickets_down_when_told_to(
    broker: EmbeddedBroker, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    key = f"prune-{uuid.uuid4().hex[:8]}:running"
    await _seed_tickets(sessions, {key: _ticket(key, TicketStatus.SOLVED, LONG_AGO)})
    old_example = await _seed_feedback(sessions, f"{key}:old-feedback", LONG_AGO)
    new_example = await _seed_feedback(sessions, f"{key}:new-feedback", utc_now() - timedelta(days=29))

    async with running_router(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        topic_partitions=1,
        router_resolved_retention_days=30,
        router_feedback_retention_days=30,
        router_prune_interval_s=0.2,
        **unique_topics(),
    ):

        async def stubbed() -> bool:
            return (await _rows(sessions, [key]))[key].pruned_at is not None

        async def feedback_pruned() -> bool:
            return await _feedback_kept(sessions, [old_example, new_example]) == [new_example]

        await wait_until(stubbed, timeout_s=10)
        await wait_until(feedback_pruned, timeout_s=10)
    assert await _with_history(sessions, [key]) == set()


async def test_feedback_examples_past_their_retention_go_and_newer_ones_stay(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    run = f"prune-{uuid.uuid4().hex[:8]}"
    now = utc_now()
    old = [await _seed_feedback(sessions, f"{run}:old-{n}", now - timedelta(days=31 + n)) for n in range(3)]
    new = [await _seed_feedback(sessions, f"{run}:new-{n}", now - timedelta(days=29 - n)) for n in range(2)]
    assert await prune_feedback(sessions, timedelta(days=30), now=now) >= len(old)
    assert await _feedback_kept(sessions, old + new) == new
    # Training reads what is left.
    async with sessions() as session:
        examples = {
            row.ticket_key for row in await feedback_examples(session) if row.ticket_key.startswith(run)
        }
    assert examples == set(new)
    assert await prune_feedback(sessions, timedelta(days=30), now=now) == 0  # nothing more is old


LONG_AGO = utc_now() - timedelta(days=40)
SNAPSHOT = {
    "external_id": "x-1",
    "subject": "Invoice for Jane Doe",
    "description": "call me on +49 170 0000000",
    "requester": {"email": "jane@example.com"},
    "tags": ["billing"],
    "custom_fields": {"iban": "DE00"},
    "updated_at": "2026-01-01T00:00:00+00:00",
}


def _ticket(
    key: str, status: TicketStatus, resolved_at: datetime | None, stored_at: datetime = LONG_AGO
) -> RouterTicket:
    return RouterTicket(
        ticket_key=key,
        source="api",
        external_id=key,
        revision=3,
        status=status.value,
        priority="P3",
        created_at=LONG_AGO - timedelta(days=1),
        resolved_at=resolved_at,
        updated_at=stored_at,
        snapshot=SNAPSHOT,
    )


@pytest.fixture
async def handler(
    sessions: async_sessionmaker[AsyncSession], settings_kwargs: dict[str, Any]
) -> AsyncIterator[RoutingHandler]:
    """The real batch handler on the test's database and broker, with a clock at LONG_AGO."""
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        yield RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: LONG_AGO
        )
    finally:
        await producer.stop()


async def _seed_tickets(sessions: async_sessionmaker[AsyncSession], tickets: dict[str, RouterTicket]) -> None:
    async with sessions() as session, session.begin():
        for key, ticket in tickets.items():
            session.add(ticket)
            session.add(
                RoutingDecision(
                    event_id=str(uuid.uuid4()),
                    caused_by=str(uuid.uuid4()),
                    ticket_key=key,
                    kind="ticket.routed",
                    status=ticket.status,
                    priority="P3",
                )
            )
            session.add(FiredTimer(timer_id=f"{key}:resolution:breach:0", ticket_key=key, kind="breach"))


async def test_a_pruning_step_that_keeps_failing_does_not_hold_the_others_back(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stuck(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("one stub update keeps failing")

    monkeypatch.setattr(retention, "prune_resolved_tickets", stuck)
    old_ids = _ids(2)
    await _claim(sessions, CONSUMER_NAME, old_ids, timedelta(days=2))
    example = await _seed_feedback(sessions, f"prune-{uuid.uuid4().hex[:8]}:stuck", LONG_AGO)
    every = Retention(dedup=timedelta(days=1), resolved=timedelta(days=30), feedback=timedelta(days=30))
    task = asyncio.create_task(prune_forever(sessions, every, interval_s=0.05))
    try:

        async def both_pruned() -> bool:
            return not await _kept(sessions, old_ids) and not await _feedback_kept(sessions, [example])

        await wait_until(both_pruned, timeout_s=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _seed_feedback(sessions: async_sessionmaker[AsyncSession], key: str, at: datetime) -> str:
    """A feedback example for ticket ``key`` recorded ``at``; returns the key."""
    async with sessions() as session, session.begin():
        session.add(ClassifierFeedback(ticket_key=key, text="VPN down", label="network", created_at=at))
    return key


async def _feedback_kept(sessions: async_sessionmaker[AsyncSession], keys: list[str]) -> list[str]:
    """The keys among ``keys`` that still have a feedback example, in the order given."""
    async with sessions() as session:
        kept = set(
            await session.scalars(
                select(ClassifierFeedback.ticket_key).where(ClassifierFeedback.ticket_key.in_(keys))
            )
        )
    return [key for key in keys if key in kept]


async def _with_history(sessions: async_sessionmaker[AsyncSession], keys: list[str]) -> set[str]:
    """The tickets among ``keys`` that still have decisions and fired timers."""
    async with sessions() as session:
        decided = set(
            await session.scalars(
                select(RoutingDecision.ticket_key).where(RoutingDecision.ticket_key.in_(keys))
            )
        )
        timed = set(
            await session.scalars(select(FiredTimer.ticket_key).where(FiredTimer.ticket_key.in_(keys)))
        )
    assert decided == timed
    return decided


async def _rows(sessions: async_sessionmaker[AsyncSession], keys: list[str]) -> dict[str, RouterTicket]:
    async with sessions() as session:
        rows = await session.scalars(select(RouterTicket).where(RouterTicket.ticket_key.in_(keys)))
        return {row.ticket_key: row for row in rows}


async def test_resolved_tickets_past_the_retention_become_stubs_without_history(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    prefix = f"prune-{uuid.uuid4().hex[:8]}"
    tickets = {
        f"{prefix}:solved-long-ago": _ticket(f"{prefix}:solved-long-ago", TicketStatus.SOLVED, LONG_AGO),
        f"{prefix}:closed-long-ago": _ticket(f"{prefix}:closed-long-ago", TicketStatus.CLOSED, LONG_AGO),
        f"{prefix}:solved-lately": _ticket(
            f"{prefix}:solved-lately", TicketStatus.SOLVED, utc_now(), utc_now()
        ),
        # Resolved long ago, but the router stored it lately (imported history, a late comment).
        f"{prefix}:heard-of-lately": _ticket(
            f"{prefix}:heard-of-lately", TicketStatus.SOLVED, LONG_AGO, utc_now()
        ),
        f"{prefix}:open-for-long": _ticket(f"{prefix}:open-for-long", TicketStatus.OPEN, None),
    }
    await _seed_tickets(sessions, tickets)

    pruned = await prune_resolved_tickets(sessions, RETENTION, chunk=1)

    assert pruned >= 2  # one ticket per transaction; earlier tests' old tickets may go too
    stubs = {f"{prefix}:solved-long-ago", f"{prefix}:closed-long-ago"}
    assert await _with_history(sessions, list(tickets)) == set(tickets) - stubs
    rows = await _rows(sessions, list(tickets))
    assert set(rows) == set(tickets)  # every ticket keeps its row
    for key, row in rows.items():
        if key in stubs:
            assert row.pruned_at is not None and row.revision == 3 and row.status in ("solved", "closed")
            assert row.snapshot == {
                "external_id": "x-1",
                "tags": ["billing"],
                "updated_at": SNAPSHOT["updated_at"],
            }
        else:
            assert row.pruned_at is None and row.snapshot == SNAPSHOT
    # A stub is not pruned again.
    first = {key: rows[key].pruned_at for key in stubs}
    await prune_resolved_tickets(sessions, RETENTION, now=utc_now() + timedelta(days=1))
    assert {key: row.pruned_at for key, row in (await _rows(sessions, list(stubs))).items()} == first


async def test_a_ticket_a_routing_batch_holds_is_left_for_the_next_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    key = f"prune-{uuid.uuid4().hex[:8]}:held"
    await _seed_tickets(sessions, {key: _ticket(key, TicketStatus.SOLVED, LONG_AGO)})
    async with sessions() as holder, holder.begin():
        if not is_postgres(holder):
            pytest.skip("PostgreSQL row locks; SQLite serialises writers")
        await holder.execute(select(RouterTicket).where(RouterTicket.ticket_key == key).with_for_update())

        await asyncio.wait_for(prune_resolved_tickets(sessions, RETENTION), timeout=10)

        assert await _with_history(sessions, [key]) == {key}
    await prune_resolved_tickets(sessions, RETENTION)
    assert await _with_history(sessions, [key]) == set()


async def test_an_event_for_a_stub_continues_its_revisions_and_makes_it_live_again(
    sessions: async_sessionmaker[AsyncSession], handler: RoutingHandler
) -> None:
    external_id = uuid.uuid4().hex

    def event(kind: EventType, **fields: Any) -> EventEnvelope:
        return ticket_event(kind, "api", TicketSnapshot(external_id=external_id, **fields), LONG_AGO)

    created = event(EventType.TICKET_CREATED, subject="vpn down for jane@example.com")
    key = created.ticket_key
    solved = event(EventType.TICKET_STATUS_CHANGED, status=TicketStatus.SOLVED)
    await handler([ConsumedEvent(created, "tickets", 0, 0), ConsumedEvent(solved, "tickets", 0, 1)])
    assert await prune_resolved_tickets(sessions, RETENTION) >= 1
    stub = (await _rows(sessions, [key]))[key]
    assert stub.pruned_at is not None and "subject" not in stub.snapshot and stub.revision == 2
    async with await api_client(sessions, tickets_router, Role.VIEWER, "stub viewer") as client:
        shown = (await client.get(f"/v1/tickets/{key}")).json()
    assert shown["pruned_at"] is not None and shown["status"] == "solved"
    assert shown["subject"] == "" and shown["decisions"] == []

    reopened = event(EventType.TICKET_STATUS_CHANGED, status=TicketStatus.OPEN)
    await handler([ConsumedEvent(reopened, "tickets", 0, 2)])

    row = (await _rows(sessions, [key]))[key]
    # Revision 3, not 1: consumers that hold revision 2 take it.
    assert row.revision == 3 and row.status == TicketStatus.OPEN.value and row.resolved_at is None
    assert row.pruned_at is None
    async with sessions() as session:
        kinds = list(
            await session.scalars(select(RoutingDecision.kind).where(RoutingDecision.ticket_key == key))
        )
    assert kinds == [EventType.TICKET_REOPENED.value]  # the history before the stub is gone


async def _stub_of_a_routed_ticket(
    sessions: async_sessionmaker[AsyncSession],
    handler: RoutingHandler,
    first: EventEnvelope,
    *later: EventEnvelope,
) -> None:
    solved = _event_of(
        first, EventType.TICKET_STATUS_CHANGED, status=TicketStatus.SOLVED, updated_at=LONG_AGO
    )
    events = [first, *later, solved]
    await handler([ConsumedEvent(event, "tickets", 0, offset) for offset, event in enumerate(events)])
    assert await prune_resolved_tickets(sessions, RETENTION) >= 1


def _event_of(ticket: EventEnvelope, kind: EventType, **fields: Any) -> EventEnvelope:
    snapshot = TicketSnapshot(external_id=ticket.ticket_key.split(":", 1)[1], **fields)
    return ticket_event(kind, "api", snapshot, LONG_AGO)


async def test_an_old_event_replayed_does_not_bring_a_stubs_text_back(
    sessions: async_sessionmaker[AsyncSession], handler: RoutingHandler
) -> None:
    created = ticket_event(
        EventType.TICKET_CREATED,
        "api",
        TicketSnapshot(
            external_id=uuid.uuid4().hex,
            subject="vpn down for jane@example.com",
            requester={"email": "jane@example.com"},
            updated_at=LONG_AGO - timedelta(hours=2),
        ),
        LONG_AGO - timedelta(hours=2),
    )
    await _stub_of_a_routed_ticket(sessions, handler, created)
    key = created.ticket_key
    before = (await _rows(sessions, [key]))[key]

    # The same event again, past the applied-ids retention (a new id here): older than the stub.
    await handler([ConsumedEvent(created.model_copy(update={"event_id": uuid.uuid4()}), "tickets", 0, 9)])

    after = (await _rows(sessions, [key]))[key]
    assert after.snapshot == before.snapshot and "subject" not in after.snapshot
    assert after.pruned_at == before.pruned_at and after.revision == before.revision


async def test_a_stub_moved_by_a_partial_update_gives_no_empty_training_example(
    sessions: async_sessionmaker[AsyncSession], handler: RoutingHandler
) -> None:
    created = ticket_event(
        EventType.TICKET_CREATED,
        "api",
        TicketSnapshot(external_id=uuid.uuid4().hex, subject="vpn down", description="tunnel drops"),
        LONG_AGO,
    )
    moved = _event_of(created, EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group="network")
    await _stub_of_a_routed_ticket(sessions, handler, created, moved)

    # A partial update (no text) moves the stub to another team: nothing to learn from.
    again = _event_of(created, EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group="billing")
    await handler([ConsumedEvent(again, "tickets", 0, 9)])

    async with sessions() as session:
        examples = [e for e in await feedback_examples(session) if e.ticket_key == created.ticket_key]
    assert [e.text.strip() for e in examples] == ["vpn down\ntunnel drops"]


async def test_a_retention_reaching_past_year_one_keeps_everything_and_fails_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A retention meant as "for good" (ROUTER_DEDUP_RETENTION_DAYS=1000000, 2,700 years): its
    # cutoff lies before year 1. Each run failed with OverflowError, logged as a failure every hour.
    forever = timedelta(days=1_000_000)
    ids = _ids(2)
    await _claim(sessions, CONSUMER_NAME, ids, timedelta(days=400))

    assert await prune_router_tables(sessions, forever) == {"processed_events": 0, "writeback_deliveries": 0}
    assert await prune_resolved_tickets(sessions, forever) == 0
    assert await prune_feedback(sessions, forever) == 0
    assert await prune_deliveries(sessions, forever) == 0
    assert await _kept(sessions, ids) == set(ids)
