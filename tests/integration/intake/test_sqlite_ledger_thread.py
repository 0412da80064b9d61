"""The delivery ledger on SQLite runs its statements on the event loop's thread, and never waits
there: a locked database sends the batch to the connection's own thread, where it waits, and the
ledger checkpoints the WAL on that thread too (services/intake/ledger.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from services.intake import ledger as ledger_module
from services.intake.ledger import NOT_SEEN, DeliveryLedger

Traced = list[tuple[int, str]]  # (thread id, statement)


@pytest.fixture
def sqlite_file(database_url: str) -> str:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's threads and locks")
    database = make_url(database_url).database
    assert database
    return database


async def _traced(ledger: DeliveryLedger, unique: str) -> tuple[Any, Traced]:
    """The ledger's (only) connection, its statements traced with the thread that ran each, after
    the ledger's first batch: that one runs on the connection's thread, after a checkpoint."""
    traced: Traced = []

    async def driver_of(driver: Any) -> Any:
        return driver

    driver = await ledger.held.call(driver_of)
    driver._conn.set_trace_callback(lambda sql: traced.append((threading.get_ident(), sql)))
    await ledger.record("ledger", f"{unique}-first", 1, None)
    statements = [sql.split()[0:2] for _, sql in traced]
    assert statements[0] == ["PRAGMA", "wal_checkpoint(PASSIVE)"] and ["INSERT", "INTO"] in statements
    assert threading.get_ident() not in {thread for thread, _ in traced}
    traced.clear()
    return driver, traced


async def _pragma(driver: Any, name: str) -> Any:
    return (await driver.execute_fetchall(f"PRAGMA {name}"))[0][0]


@pytest.fixture
def blocker(sqlite_file: str) -> Iterator[sqlite3.Connection]:
    """Another connection to the database, as another process or the outbox's pool would be."""
    connection = sqlite3.connect(sqlite_file, isolation_level=None)
    yield connection
    connection.close()


async def test_a_batch_runs_on_the_event_loops_thread(
    sqlite_file: str, ledger: DeliveryLedger, unique: str
) -> None:
    driver, traced = await _traced(ledger, unique)
    # Neither waits on that thread: not for a lock, not for SQLite's own checkpoint.
    assert await _pragma(driver, "busy_timeout") == 0
    assert await _pragma(driver, "wal_autocheckpoint") == 0
    traced.clear()
    answers = await asyncio.gather(
        ledger.accepted("ledger", f"{unique}-never"), ledger.record("ledger", f"{unique}-new", 1, "d")
    )
    assert answers == [NOT_SEEN, None]
    assert await ledger.accepted("ledger", f"{unique}-new") == "d"
    assert [sql.split()[0] for _, sql in traced] == ["INSERT", "SELECT", "SELECT"]
    assert {thread for thread, _ in traced} == {threading.get_ident()}


async def test_a_locked_database_makes_the_batch_wait_on_the_connections_thread(
    sqlite_file: str, ledger: DeliveryLedger, unique: str, blocker: sqlite3.Connection
) -> None:
    driver, traced = await _traced(ledger, unique)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    blocker.execute(
        "INSERT INTO webhook_deliveries (source, delivery_id, received_at, events) "
        "VALUES ('ledger', ?, '2026-01-01 00:00:00.000000', 1)",
        (f"{unique}-other",),
    )
    recording = asyncio.ensure_future(ledger.record("ledger", f"{unique}-waits", 2, "w"))
    await asyncio.sleep(0.3)  # the event loop runs meanwhile: nothing waits on its thread
    assert not recording.done()
    blocker.execute("COMMIT")
    await asyncio.wait_for(recording, 10)
    assert await ledger.accepted("ledger", f"{unique}-waits") == "w"
    assert await ledger.accepted("ledger", f"{unique}-other") is None
    loop_thread = threading.get_ident()
    inserts = [thread for thread, sql in traced if sql.startswith("INSERT")]
    assert inserts[0] == loop_thread and len(inserts) == 2 and inserts[1] != loop_thread, traced
    # The wait's timeout was the batch's alone: the next batch again fails fast rather than wait.
    assert await _pragma(driver, "busy_timeout") == 0


async def test_the_ledger_checkpoints_the_wal_on_the_connections_thread(
    sqlite_file: str, ledger: DeliveryLedger, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of 3 records counts 5 pages (one per record, two per commit).
    monkeypatch.setattr(ledger_module, "CHECKPOINT_AFTER_PAGES", 10)
    _, traced = await _traced(ledger, unique)
    loop_thread = threading.get_ident()

    async def batch(name: str) -> list[tuple[bool, str]]:
        traced.clear()
        await asyncio.gather(*(ledger.record("ledger", f"{unique}-{name}{n}", 1, None) for n in range(3)))
        return [(thread == loop_thread, " ".join(sql.split()[:2])) for thread, sql in traced]

    assert await batch("a") == [(True, "INSERT INTO")]
    # The checkpoint first: the write after it starts the emptied WAL over, flushing its header.
    checkpointed = await batch("b")
    assert checkpointed[0] == (False, "PRAGMA wal_checkpoint(PASSIVE)")
    assert (False, "INSERT INTO") in checkpointed and (True, "INSERT INTO") not in checkpointed
    assert await batch("c") == [(True, "INSERT INTO")]  # counted again from there
    assert await asyncio.gather(*(ledger.accepted("ledger", f"{unique}-{k}2") for k in "abc")) == [None] * 3


class _FailingCheckpoint:
    """A connection whose checkpoint meets a disk error."""

    def __init__(self) -> None:
        self.executed: list[str] = []

    def execute(self, sql: str, *args: Any) -> None:
        self.executed.append(sql)
        if "wal_checkpoint" in sql:
            raise sqlite3.OperationalError("disk I/O error")


def test_a_failed_checkpoint_fails_no_batch_and_is_tried_again() -> None:
    connection = _FailingCheckpoint()

    def both(_: Any) -> list[Any]:
        return [("s", "d", None)]

    rows, checkpointed = ledger_module._on_own_thread(both, True, connection)  # type: ignore[arg-type]
    assert rows == [("s", "d", None)] and not checkpointed  # not counted as done: a later batch tries
    assert connection.executed[-1] == "PRAGMA busy_timeout=0"
