"""insert_rows and among: on PostgreSQL one unnest statement / one array parameter, on SQLite the
Core statements; either way what is stored and found is what a plain Core insert and IN give."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, event, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket, RoutingDecision
from shared.db.bulk import _constant_columns, among, insert_rows
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


def test_columns_with_one_value_in_every_row_are_told_apart():
    at = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    same_instant = at.astimezone(timezone(timedelta(hours=5)))
    columns: list[list[Any]] = [
        ["a", "a", "a"],  # one value
        ["a", "b", "a"],
        [None, None, None],
        [at, same_instant, at],  # the same instant in two zones: stored alike
        [0.0, -0.0, 0.0],  # equal, not alike: stays an array
        [{"x": 1}, {"x": 1}, {"x": 1}],  # a JSON document: left to the array
        [1, 1, 1],
    ]
    assert _constant_columns(columns) == (True, False, True, True, False, False, True)
    assert _constant_columns([["a"], [1]]) == (False, False)  # one row: arrays
    # Every column constant: the first stays an array, which gives unnest its row count.
    assert _constant_columns([["a", "a"], [1, 1]]) == (False, True)


async def test_shared_values_go_as_scalars_and_are_stored_in_every_row(
    sessions: async_sessionmaker[AsyncSession], request: pytest.FixtureRequest
):
    keys = [f"{KEY_PREFIX}{uuid.uuid4()}" for _ in range(3)]
    core_keys = [f"{KEY_PREFIX}{uuid.uuid4()}" for _ in keys]
    # Every column but the key and the external id holds one value in all three rows.
    rows = [_ticket(key, external_id=f"ZD-{i}") for i, key in enumerate(keys)]
    sent: list[Any] = []
    async with sessions() as session, session.begin():
        engine = (await session.connection()).engine.sync_engine

        def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
            sent.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        try:
            await insert_rows(session, TICKETS, rows)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        await session.execute(
            TICKETS.insert(), [_ticket(k, external_id=f"ZD-{i}") for i, k in enumerate(core_keys)]
        )
    async with sessions() as session:
        for key, core_key in zip(keys, core_keys, strict=True):
            assert await _stored(session, key) == await _stored(session, core_key)
    if "postgres" in request.node.callspec.id:
        [(statement, parameters)] = sent
        arrays = [value for value in parameters if isinstance(value, list)]
        # ticket_key, external_id, the float confidence, sla and snapshot (documents are not
        # compared), as arrays; the other 13, sla_clock's JSON null among them, as scalars.
        assert len(arrays) == 5 and len(parameters) == 18
        assert "$11::TIMESTAMP WITH TIME ZONE," in statement  # created_at: one parameter


async def test_identical_rows_are_all_inserted(sessions: async_sessionmaker[AsyncSession]):
    messages = [PendingMessage(OWNER, "routing", "same", b"same") for _ in range(3)]
    async with sessions() as session, session.begin():
        await insert_outbox(session, messages)
    ids = [m.id for m in messages]
    assert len(set(ids)) == 3
    async with sessions() as session:
        values = (await session.scalars(select(OUTBOX.c.value).where(among(OUTBOX.c.id, ids, session)))).all()
    assert values == [b"same"] * 3
