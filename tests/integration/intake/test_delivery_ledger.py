"""The delivery ledger on its own connections, against both databases: what it stores is what the
ORM reads, a lookup goes through the primary key, and a dead connection is replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.ledger import NOT_SEEN, DeliveryLedger, ledger_engine, sqlite_lookup
from services.intake.models import WebhookDelivery
from shared.events import utc_now


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[DeliveryLedger]:
    opened = DeliveryLedger(ledger_engine(database_url))
    yield opened
    await opened.close()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name}-{id(request)}"


async def test_concurrent_deliveries_are_recorded_and_found(
    ledger: DeliveryLedger, sessions: async_sessionmaker[AsyncSession], unique: str
) -> None:
    ids = [f"{unique}-{n}" for n in range(40)]
    assert await asyncio.gather(*(ledger.accepted("ledger", i) for i in ids)) == [NOT_SEEN] * 40
    before = utc_now()
    await asyncio.gather(
        *(ledger.record("ledger", i, n % 3, f"digest-{n}" if n % 2 else None) for n, i in enumerate(ids))
    )
    # The first record of a delivery id wins, within a batch and across batches.
    await asyncio.gather(ledger.record("ledger", ids[0], 9, "other"), ledger.record("ledger", ids[0], 8, "x"))
    found = await asyncio.gather(*(ledger.accepted("ledger", i) for i in [*ids, f"{unique}-never"]))
    assert found == [f"digest-{n}" if n % 2 else None for n in range(40)] + [NOT_SEEN]
    async with sessions() as session:
        rows = (
            await session.scalars(select(WebhookDelivery).where(WebhookDelivery.delivery_id.in_(ids)))
        ).all()
    assert {(row.delivery_id, row.events) for row in rows} == {(i, n % 3) for n, i in enumerate(ids)}
    # received_at written by the ledger reads back through the ORM as the aware UTC instant.
    assert all(before - timedelta(seconds=1) <= row.received_at <= utc_now() for row in rows)


async def test_a_sqlite_lookup_goes_through_the_primary_key(database_url: str, engine: AsyncEngine) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's query plan")
    async with engine.connect() as connection:
        explain = f"EXPLAIN QUERY PLAN {sqlite_lookup(16)}"
        plan = (await connection.exec_driver_sql(explain, ("s", "d") * 16)).all()
    details = [row[-1] for row in plan]
    assert not any(d.startswith("SCAN webhook_deliveries") or d == "SCAN d" for d in details), details
    assert any(d.startswith("SEARCH d USING") for d in details), details


async def test_a_connection_the_server_dropped_is_replaced(
    database_url: str, ledger: DeliveryLedger, engine: AsyncEngine, unique: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL closes connections; a SQLite file has none to lose")
    assert await ledger.accepted("ledger", unique) is NOT_SEEN  # the ledger now holds a connection
    async with engine.connect() as admin:
        dropped = await admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert dropped and dropped >= 1
    await ledger.record("ledger", unique, 1, None)  # on a new connection, without an error
    assert await ledger.accepted("ledger", unique) is None
