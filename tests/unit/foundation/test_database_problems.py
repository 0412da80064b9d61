"""A request that meets the database away for a moment (a restart, a failover, a pool with no
free connection) is answered 503 with Retry-After, not 500; any other database error is still
a bug: 500, and raised for the server to log."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.db.engine import create_engine
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
