"""The delivery ledger on its own connections, against both databases: what it stores is what the
ORM reads, a lookup goes through the primary key, and a dead connection is replaced."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from asyncpg.exceptions import DivisionByZeroError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.held import (
    REPLAN_AFTER_S,
    HeldConnections,
    gate_connections,
    held_connections,
)
from services.intake.ledger import _PG_LOOKUP, NOT_SEEN, DeliveryLedger, sqlite_lookup
from services.intake.models import WebhookDelivery
from shared.events import utc_now


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


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL closes connections; a SQLite file has none to lose")


@pytest.fixture
async def held(database_url: str) -> AsyncIterator[HeldConnections]:
    opened = gate_connections(database_url)
    yield opened
    await opened.close()


async def _backend_pids(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as admin:
        rows = await admin.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return {row[0] for row in rows}


async def test_connections_the_server_dropped_are_all_replaced(
    database_url: str, engine: AsyncEngine, unique: str
) -> None:
    _postgres_only(database_url)
    held = held_connections(database_url, 3, {})
    ledger = DeliveryLedger(held)
    try:
        await ledger.record("ledger", f"{unique}-other", 1, None)
        # Three held connections (three users at once), all dropped as a restart does.
        await asyncio.gather(
            *(held.call(lambda driver: driver.fetch("SELECT pg_sleep(0.05)")) for _ in range(3))
        )
        async with engine.connect() as admin:
            dropped = await admin.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert dropped and dropped >= 3
        await ledger.record("ledger", unique, 1, None)  # on new connections, without an error
        assert await ledger.accepted("ledger", unique) is None
        assert await ledger.accepted("ledger", f"{unique}-other") is None
    finally:
        await held.close()


async def test_a_refused_statement_is_neither_retried_nor_costs_its_connection(
    database_url: str, held: HeldConnections
) -> None:
    _postgres_only(database_url)
    first = await held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid()"))
    tried: list[int] = []

    async def refused(driver: Any) -> None:
        tried.append(1)
        await driver.fetch("SELECT 1 / 0")

    with pytest.raises(DivisionByZeroError):
        await held.call(refused)
    assert tried == [1]
    assert await held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid()")) == first


async def test_failing_statements_on_sqlite_give_their_connection_back(
    database_url: str, held: HeldConnections
) -> None:
    # A statement SQLite refuses (a write lock held past the busy timeout, a disk error) raised
    # AttributeError (aiosqlite's connection has no is_closed) and left its connection checked out:
    # after two, every later statement waited 30 s for the pool and failed, intake answering 503.
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's driver connection")
    for _ in range(3):
        with pytest.raises(sqlite3.OperationalError):
            await held.fetch("SELECT * FROM no_such_table", [])
    async with asyncio.timeout(5):
        assert await held.fetch("SELECT 1", []) == [(1,)]


async def test_a_cancelled_statement_stays_cancelled_and_its_connection_is_closed(
    database_url: str, held: HeldConnections, engine: AsyncEngine
) -> None:
    _postgres_only(database_url)
    pids: list[int] = []

    async def slow(driver: Any) -> None:
        pids.append(await driver.fetchval("SELECT pg_backend_pid()"))
        await driver.fetch("SELECT pg_sleep(5)")

    task = asyncio.ensure_future(held.call(slow))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(pids) == 1  # not tried again
    await _gone(engine, pids[0])


async def test_closing_while_a_statement_runs_leaves_no_connection_open(
    database_url: str, held: HeldConnections, engine: AsyncEngine
) -> None:
    _postgres_only(database_url)
    pid = asyncio.ensure_future(
        held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.3)"))
    )
    await asyncio.sleep(0.1)
    await held.close()
    await _gone(engine, await pid)


async def _gone(engine: AsyncEngine, pid: int) -> None:
    for _ in range(50):
        if pid not in await _backend_pids(engine):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"backend {pid} still connected")


async def test_after_closing_nothing_opens_a_connection(held: HeldConnections) -> None:
    await held.call(lambda driver: asyncio.sleep(0))
    await held.close()
    with pytest.raises(ConnectionError):  # e.g. the outbox gate's read ahead during the shutdown
        await held.call(lambda driver: asyncio.sleep(0))
    assert held._idle == []


async def test_a_timed_out_statement_costs_its_connection(
    database_url: str, held: HeldConnections, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_only(database_url)
    first = await held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid()"))
    monkeypatch.setattr("services.intake.held.STATEMENT_TIMEOUT_S", 0.2)
    with pytest.raises(TimeoutError):
        await held.call(lambda driver: driver.fetch("SELECT pg_sleep(2)"))
    # A silent network path would time out every later statement on it: the next one gets a new one.
    assert await held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid()")) != first


async def test_lookups_and_records_asked_together_share_a_batch(
    ledger: DeliveryLedger, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.record("ledger", f"{unique}-earlier", 1, "earlier")
    trips: list[object] = []
    call = ledger.held.call

    async def counted(statement: Any) -> Any:
        trips.append(statement)
        return await call(statement)

    monkeypatch.setattr(ledger.held, "call", counted)
    answers = await asyncio.gather(
        ledger.accepted("ledger", f"{unique}-earlier"),
        ledger.accepted("ledger", f"{unique}-never"),
        *(ledger.record("ledger", f"{unique}-{n}", n, None) for n in range(5)),
    )
    assert answers == ["earlier", NOT_SEEN] + [None] * 5
    # One statement on PostgreSQL; on SQLite two, on the event loop's thread.
    assert len(trips) == 1
    assert await asyncio.gather(*(ledger.accepted("ledger", f"{unique}-{n}") for n in range(5))) == [None] * 5


async def test_only_the_held_connections_commit_asynchronously(
    database_url: str, ledger: DeliveryLedger, held: HeldConnections, engine: AsyncEngine
) -> None:
    _postgres_only(database_url)
    # The ledger's records (a lost one allows a republish); parked events commit through the pool.
    for connections in (ledger.held, held):
        assert await connections.call(lambda driver: driver.fetchval("SHOW synchronous_commit")) == "off"
    async with engine.connect() as connection:
        assert await connection.scalar(text("SHOW synchronous_commit")) == "on"


async def test_a_delivery_id_is_found_only_under_its_own_source(ledger: DeliveryLedger, unique: str) -> None:
    await asyncio.gather(
        ledger.record("a", f"{unique}-x", 1, "ax"), ledger.record("b", f"{unique}-y", 1, "by")
    )
    found = await asyncio.gather(  # in one batch
        ledger.accepted("a", f"{unique}-y"),
        ledger.accepted("b", f"{unique}-x"),
        ledger.accepted("a", f"{unique}-x"),
        ledger.accepted("b", f"{unique}-y"),
    )
    assert found == [NOT_SEEN, NOT_SEEN, "ax", "by"]


async def test_a_postgres_lookup_goes_through_the_primary_key(
    database_url: str, ledger: DeliveryLedger, unique: str
) -> None:
    _postgres_only(database_url)
    await asyncio.gather(*(ledger.record("plan", f"{unique}-{n}", 1, None) for n in range(8000)))
    # The plan the ledger's connection makes (a generic one, for any keys), at this table size.
    plan = await ledger.held.call(lambda driver: _generic_plan(driver, _PG_LOOKUP))
    assert "Index Scan using pk_webhook_deliveries" in plan and "Seq Scan" not in plan, plan


async def test_a_postgres_lookup_goes_through_the_primary_key_of_an_empty_table(
    database_url: str, ledger: DeliveryLedger
) -> None:
    # A new install's ledger: a plan made while the table is empty is kept for a second, as the
    # first thousands of deliveries go in. It scanned the table whole for every batch (three times
    # the statement's CPU in that second) until the ledger's connections ruled scans out.
    _postgres_only(database_url)

    async def plan_on_an_empty_table(driver: Any) -> str:
        await driver.execute("CREATE TEMP TABLE new_deliveries (LIKE webhook_deliveries INCLUDING ALL)")
        try:
            lookup = _PG_LOOKUP.replace("webhook_deliveries", "new_deliveries")
            return await _generic_plan(driver, lookup, analyze=False)
        finally:
            await driver.execute("DROP TABLE new_deliveries")

    plan = await ledger.held.call(plan_on_an_empty_table)
    assert "Index Scan using new_deliveries_pkey" in plan and "Seq Scan" not in plan, plan


async def _generic_plan(driver: Any, lookup: str, analyze: bool = True) -> str:
    if analyze:
        await driver.execute("ANALYZE webhook_deliveries")
    assert await driver.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
    untyped = lookup.replace("::varchar[]", "")
    await driver.execute(f"PREPARE planned_lookup(varchar[], varchar[]) AS {untyped}")
    try:
        rows = await driver.fetch("EXPLAIN EXECUTE planned_lookup('{plan,plan,plan}', '{a,b,c}')")
    finally:
        await driver.execute("DEALLOCATE planned_lookup")
    return "\n".join(row[0] for row in rows)


async def test_the_ledger_plans_its_statement_once_and_again_a_second_later(
    database_url: str, ledger: DeliveryLedger, held: HeldConnections, unique: str
) -> None:
    _postgres_only(database_url)
    for _ in range(3):
        await ledger.accepted("ledger", unique)
    [(name, plans, generic)] = await _ledger_statements(ledger.held)
    assert (plans, generic) == (3, 3)  # planned once, when first run, and kept
    await asyncio.sleep(REPLAN_AFTER_S + 0.3)
    await ledger.accepted("ledger", unique)
    [(renamed, plans, generic)] = await _ledger_statements(ledger.held)
    assert renamed != name and (plans, generic) == (1, 1)  # prepared again: planned for the table as it is
    # The outbox gate plans every execution, as the other services do.
    assert await held.call(lambda driver: driver.fetchval("SHOW plan_cache_mode")) == "force_custom_plan"


async def _ledger_statements(held: HeldConnections) -> list[tuple[str, int, int]]:
    rows = await held.call(
        lambda driver: driver.fetch(
            "SELECT name, generic_plans + custom_plans, generic_plans FROM pg_prepared_statements "
            "WHERE statement LIKE '%FROM webhook_deliveries%' AND statement NOT LIKE '%pg_prepared%'"
        )
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def test_records_are_inserted_in_key_order(
    database_url: str, ledger: DeliveryLedger, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two replicas inserting the same ids in opposite orders would deadlock, failing the lookups
    # that share the statement: each inserts in the same (key) order.
    _postgres_only(database_url)
    inserted: list[list[str]] = []
    fetch = ledger.held.fetch

    async def captured(sql: str, params: list[Any]) -> list[Any]:
        inserted.append(params[-4])  # the delivery ids' array (after source's)
        return await fetch(sql, params)

    monkeypatch.setattr(ledger.held, "fetch", captured)
    ids = [f"{unique}-{n}" for n in (5, 3, 9, 1, 7)]
    await asyncio.gather(*(ledger.record("ledger", i, 1, None) for i in ids))
    assert inserted == [sorted(ids)]
