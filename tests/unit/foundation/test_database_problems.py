"""A request that meets the database away for a moment (a restart, a failover, a pool with no
free connection) is answered 503 with Retry-After, not 500; any other database error is still
a bug: 500, and raised for the server to log."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db.engine import create_engine
from shared.db.errors import is_statement_timeout, is_transient_database_error
from shared.http.problems import install_problem_handlers
from shared.kafka.consumer import is_transient
from shared.kafka.embedded import free_port


class ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("server said no")
        self.sqlstate = sqlstate


def failing_app(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/read")
    async def read() -> None:
        raise error

    return app


async def answer_to(error: Exception, raise_app_exceptions: bool = False) -> httpx.Response:
    transport = httpx.ASGITransport(app=failing_app(error), raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/read")


@pytest.mark.parametrize(
    "error",
    [
        DBAPIError("SELECT 1", {}, ConnectionError("connection is closed"), connection_invalidated=True),
        DBAPIError("SELECT 1", {}, ServerError("57P01")),  # admin shutdown
        OperationalError("SELECT 1", {}, Exception("database is locked")),
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    ],
    ids=["disconnect", "server-shutting-down", "sqlite-locked", "pool-exhausted"],
)
async def test_the_database_away_is_answered_503_with_retry_after(error: Exception) -> None:
    answer = await answer_to(error)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["title"] == "Service unavailable"
    assert "SELECT" not in answer.text


async def test_another_database_error_is_a_bug_answered_500_and_raised() -> None:
    error = IntegrityError("INSERT ...", {}, ServerError("23505"))
    answer = await answer_to(error)
    assert answer.status_code == 500
    assert answer.json()["title"] == "Internal error" and "INSERT" not in answer.text
    with pytest.raises(IntegrityError):  # the server logs it with its traceback
        await answer_to(error, raise_app_exceptions=True)


async def test_a_database_that_refuses_connections_is_answered_503() -> None:
    # PostgreSQL stopped or restarting: the pool's connections are gone and a new one is refused.
    # asyncpg raises ConnectionRefusedError, which SQLAlchemy does not wrap: answered 500 as a bug.
    engine = create_engine(f"postgresql+asyncpg://nobody:secret@127.0.0.1:{free_port()}/nothing")
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/read")
    async def read() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.get("/read")
    finally:
        await engine.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    # Consumers retry it without limit, as any database outage.
    with pytest.raises(DBAPIError) as raised:
        async with engine.connect():
            pass
    assert is_transient(raised.value)


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    """An error as SQLite raises it (with its result code), for those hard to provoke here."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def raised_by_sqlite(work: Callable[[sqlite3.Connection], object], path: str = ":memory:") -> sqlite3.Error:
    try:
        connection = sqlite3.connect(path, timeout=0)
        try:
            work(connection)
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("SQLite raised nothing")


def locked(tmp_path: Path) -> sqlite3.Error:
    """'database is locked' (SQLITE_BUSY): another connection holds the write lock."""
    path = str(tmp_path / "locked.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        return raised_by_sqlite(lambda c: c.execute("BEGIN IMMEDIATE"), path)
    finally:
        holder.close()


def too_many_variables(_tmp: Path) -> sqlite3.Error:
    return raised_by_sqlite(lambda c: c.execute("SELECT " + ",".join("?" * 40_000), [0] * 40_000))


SQLITE_TRANSIENT: dict[str, Callable[[Path], sqlite3.Error]] = {
    "locked": locked,
    "table-locked": lambda _: sqlite_error("database table is locked", sqlite3.SQLITE_LOCKED),
    "busy-snapshot": lambda _: sqlite_error("database is locked", 517),  # SQLITE_BUSY_SNAPSHOT
    "disk-io": lambda _: sqlite_error("disk I/O error", 4874),  # SQLITE_IOERR_SHMSIZE
    "cannot-open": lambda tmp: raised_by_sqlite(lambda c: None, str(tmp / "missing" / "dir" / "x.db")),
    "no-code-locked": lambda _: sqlite3.OperationalError("database is locked"),
}
SQLITE_NOT_TRANSIENT: dict[str, Callable[[Path], sqlite3.Error]] = {
    "no-such-column": lambda _: raised_by_sqlite(lambda c: c.execute("SELECT nothing FROM sqlite_master")),
    "too-many-variables": too_many_variables,
    "syntax": lambda _: raised_by_sqlite(lambda c: c.execute("SELEC 1")),
    "no-code-no-such-table": lambda _: sqlite3.OperationalError("no such table: tickets"),
}


@pytest.mark.parametrize("make", SQLITE_TRANSIENT.values(), ids=SQLITE_TRANSIENT.keys())
async def test_sqlite_busy_locked_or_its_files_away_is_transient_and_answered_503(
    make: Callable[[Path], sqlite3.Error], tmp_path: Path
) -> None:
    error = OperationalError("UPDATE tickets ...", {}, make(tmp_path))
    assert is_transient_database_error(error) and is_transient(error)  # consumers retry it without limit
    answer = await answer_to(error)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"


@pytest.mark.parametrize("make", SQLITE_NOT_TRANSIENT.values(), ids=SQLITE_NOT_TRANSIENT.keys())
async def test_another_sqlite_operational_error_is_the_statements_fault(
    make: Callable[[Path], sqlite3.Error], tmp_path: Path
) -> None:
    # SQLite reports a bad statement ("no such column", "too many SQL variables") as an
    # OperationalError too: retried as an outage, its message blocked its partition for good.
    error = OperationalError("SELECT ...", {}, make(tmp_path))
    assert not is_transient_database_error(error) and not is_transient(error)
    answer = await answer_to(error)
    assert answer.status_code == 500 and answer.json()["title"] == "Internal error"


def statement_timeout() -> DBAPIError:
    return DBAPIError("SELECT ...", {}, ServerError("57014"))  # canceling statement due to statement timeout


def test_a_statement_timeout_is_the_statements_failure_for_a_consumer() -> None:
    # A statement that outlives DATABASE_STATEMENT_TIMEOUT_S every time must not hold its partition
    # for ever: it counts towards the message's attempts (a silent server is an outage instead:
    # asyncpg's command_timeout, tests/integration/foundation/test_statement_timeout.py).
    assert not is_transient(statement_timeout()) and not is_transient_database_error(statement_timeout())
    assert is_statement_timeout(statement_timeout())
    assert not is_statement_timeout(DBAPIError("SELECT 1", {}, ServerError("57P01")))


async def test_a_statement_timeout_is_answered_503_with_retry_after() -> None:
    # An API client is not held for ever by it: the database is too slow for the moment.
    answer = await answer_to(statement_timeout())
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
