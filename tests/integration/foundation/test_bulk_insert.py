"""insert_rows and among: on PostgreSQL one unnest statement / one array parameter, on SQLite the
Core statements; either way what is stored and found is what a plain Core insert and IN give."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket, RoutingDecision
from shared.db.bulk import among, insert_rows
from shared.db.models import OutboxMessage, ProcessedEvent
from shared.db.outbox import PendingMessage, insert_outbox
from shared.events import utc_now

TICKETS = cast(Table, RouterTicket.__table__)
DECISIONS = cast(Table, RoutingDecision.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)
CLAIMS = cast(Table, ProcessedEvent.__table__)

# The rows these tests write, by key prefix and owner, so that they can be removed afterwards: the
# tickets' snapshots are not TicketSnapshots and their SLA timers are due, so left in the session's
# shared database they would be tickets the escalation scanner of a later test cannot read.
KEY_PREFIX = "bulk-test:"
OWNER = "bulk-test"


@pytest.fixture(autouse=True)
async def _remove_written_rows(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    async with sessions() as session, session.begin():
        await session.execute(TICKETS.delete().where(TICKETS.c.ticket_key.startswith(KEY_PREFIX)))
        await session.execute(DECISIONS.delete().where(DECISIONS.c.ticket_key.startswith(KEY_PREFIX)))
        await session.execute(OUTBOX.delete().where(OUTBOX.c.owner == OWNER))
        await session.execute(CLAIMS.delete().where(CLAIMS.c.consumer == OWNER))


def _ticket(key: str, **changes: Any) -> dict[str, Any]:
    at = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)
    row: dict[str, Any] = {
        "ticket_key": key,
        "source": "zendesk",
        "external_id": "ZD-1",
        "revision": 3,
        "status": "open",
        "team": None,
        "priority": "P2",
        "category": "access",
        "category_confidence": 0.8125,
        "language": "de",
        "created_at": at,
        # Another zone: stored as the same instant in UTC, as UtcDateTime does for Core inserts.
        "updated_at": at.astimezone(timezone(timedelta(hours=5))),
        "routed_at": None,
        "resolved_at": None,
        "sla": {"policy": "gold", "first_response_due": "2026-11-24T10:30:00+00:00"},
        "snapshot": {"subject": "Größe \u2028 ✓", "tags": ["a", "b"], "n": 2**63 - 1, "none": None},
        "sla_clock": None,
        "sla_next_due_at": at + timedelta(hours=1),
    }
    row.update(changes)
    return row


async def _stored(session: AsyncSession, key: str) -> dict[str, Any]:
    row = (await session.execute(select(TICKETS).where(TICKETS.c.ticket_key == key))).mappings().one()
    return {name: value for name, value in row.items() if name != "ticket_key"}


async def test_insert_rows_stores_what_a_core_insert_stores(sessions: async_sessionmaker[AsyncSession]):
    bulk_key, core_key = f"{KEY_PREFIX}{uuid.uuid4()}", f"{KEY_PREFIX}{uuid.uuid4()}"
    async with sessions() as session, session.begin():
        await insert_rows(session, TICKETS, [_ticket(bulk_key)])
        await session.execute(TICKETS.insert(), [_ticket(core_key)])
    async with sessions() as session:
        assert await _stored(session, bulk_key) == await _stored(session, core_key)
        stored = await _stored(session, bulk_key)
        assert stored["updated_at"] == _ticket(bulk_key)["created_at"]
        assert stored["snapshot"]["n"] == 2**63 - 1
        # A None JSON document is stored as a Core insert stores it (JSON null, not SQL NULL).
        null_docs = "SELECT count(*) FROM router_tickets WHERE ticket_key IN (:a, :b) AND sla_clock IS NULL"
        assert (await session.execute(text(null_docs), {"a": bulk_key, "b": core_key})).scalar() == 0


async def test_a_naive_datetime_is_refused_as_the_column_type_refuses_it(
    sessions: async_sessionmaker[AsyncSession],
):
    with pytest.raises((ValueError, StatementError), match="naive datetime"):
        async with sessions() as session, session.begin():
            await insert_rows(
                session, TICKETS, [_ticket(f"{KEY_PREFIX}{uuid.uuid4()}", created_at=datetime(2026, 1, 1))]
            )


async def test_many_rows_in_order_with_their_serial_ids_and_defaults(
    sessions: async_sessionmaker[AsyncSession],
):
    before = utc_now()
    messages = [PendingMessage(OWNER, "routing", f"k{i}", f"v{i}".encode()) for i in range(700)]
    async with sessions() as session, session.begin():
        await insert_outbox(session, messages)
    ids = [m.id for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    async with sessions() as session:
        rows = (
            await session.execute(
                select(OUTBOX.c.id, OUTBOX.c.value, OUTBOX.c.created_at)
                .where(among(OUTBOX.c.id, ids, session))
                .order_by(OUTBOX.c.id)
            )
        ).all()
    # Each message got the id of its own row, and ids follow the given order.
    assert [(row.id, row.value) for row in rows] == [(m.id, m.value) for m in messages]
    assert all(row.created_at >= before - timedelta(seconds=1) for row in rows)  # the Python default


async def test_skip_conflicts_returns_only_the_rows_inserted(sessions: async_sessionmaker[AsyncSession]):
    at = utc_now()
    taken, new = str(uuid.uuid4()), str(uuid.uuid4())

    def rows(*ids: str) -> list[dict[str, Any]]:
        return [{"consumer": OWNER, "event_id": i, "processed_at": at} for i in ids]

    async with sessions() as session, session.begin():
        assert await insert_rows(
            session, CLAIMS, rows(taken), skip_conflicts=True, returning=CLAIMS.c.event_id
        ) == [taken]
    async with sessions() as session, session.begin():
        inserted = await insert_rows(
            session, CLAIMS, rows(taken, new), skip_conflicts=True, returning=CLAIMS.c.event_id
        )
        assert inserted == [new]
    async with sessions() as session, session.begin():
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            await insert_rows(session, CLAIMS, rows(new))


async def test_rows_without_returning_and_no_rows(sessions: async_sessionmaker[AsyncSession]):
    event_id = str(uuid.uuid4())
    decision = {
        "event_id": event_id,
        "caused_by": str(uuid.uuid4()),
        "ticket_key": f"{KEY_PREFIX}decision",
        "kind": "ticket.routed",
        "team": "access",
        "previous_team": None,
        "status": "open",
        "priority": "P3",
        "rule": None,
        "ruleset_version": 4,
        "reasons": ["rule x", 'it\'s "quoted"'],
        "decided_at": utc_now(),
    }
    async with sessions() as session, session.begin():
        assert await insert_rows(session, DECISIONS, [decision]) == []
        assert await insert_rows(session, DECISIONS, []) == []
    async with sessions() as session:
        stored = (
            await session.scalars(select(RoutingDecision).where(RoutingDecision.event_id == event_id))
        ).one()
        assert (stored.reasons, stored.rule, stored.ruleset_version) == (decision["reasons"], None, 4)


async def test_among_finds_the_rows_in_the_collection(sessions: async_sessionmaker[AsyncSession]):
    keys = [f"{KEY_PREFIX}{uuid.uuid4()}" for _ in range(3)]
    async with sessions() as session, session.begin():
        await insert_rows(session, TICKETS, [_ticket(key) for key in keys])
    async with sessions() as session:

        async def found(wanted: set[str]) -> set[str]:
            query = select(TICKETS.c.ticket_key).where(among(TICKETS.c.ticket_key, wanted, session))
            return set((await session.scalars(query)).all())

        assert await found({keys[0], keys[2], f"{KEY_PREFIX}missing"}) == {keys[0], keys[2]}
        assert await found(set()) == set()
