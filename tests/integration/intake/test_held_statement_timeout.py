"""Intake's own connections (the delivery ledger's and the outbox gate's) carry a server-side
statement bound, as its pool does. Before, they had only the client's own bound
(``services.intake.held.STATEMENT_TIMEOUT_S``): a statement given up on there (its connection
discarded) ran on in PostgreSQL, a record holding the row locks it took, for as long as it took.
Then they had the services' (``DATABASE_STATEMENT_TIMEOUT_S``, 30 s by default), which still let it
run on for 20 s after the client's 10: the server's bound is now the shorter of the services' and
a second less than the client's, so that the server's cancel (which keeps the connection) comes first."""

from __future__ import annotations

import time

import pytest
from asyncpg.exceptions import QueryCanceledError
from sqlalchemy import text

from services.intake import app as intake_app
from services.intake.app import create_app
from services.intake.held import (
    SERVER_STATEMENT_TIMEOUT_S,
    STATEMENT_TIMEOUT_S,
    gate_connections,
    ledger_connections,
)
from shared.settings import IntakeSettings


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's statement_timeout (SQLite's statements wait out busy_timeout)")


@pytest.mark.parametrize(
    ("setting", "pools", "helds"),
    [
        (1.5, "1500ms", "1500ms"),  # shorter than the client's bound: kept
        (30.0, "30s", "9s"),  # the default: the held connections' is a second under the client's
    ],
)
async def test_intakes_connections_take_the_shorter_of_the_services_and_their_own_timeout(
    database_url: str, monkeypatch: pytest.MonkeyPatch, setting: float, pools: str, helds: str
) -> None:
    _postgres_only(database_url)
    assert (STATEMENT_TIMEOUT_S, SERVER_STATEMENT_TIMEOUT_S) == (10.0, 9.0)  # the expected "9s" above
    monkeypatch.setattr(intake_app, "BROKER_WAIT_AT_START_S", 0)  # no broker needed: its port is shut
    settings = IntakeSettings(
        database_url=database_url,
        database_statement_timeout_s=setting,
        kafka_bootstrap_servers="127.0.0.1:9",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        publisher = app.state.publisher
        async with app.state.resources.engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == pools
        for held in (publisher.ledger.held, publisher.gate.held):
            assert await held.call(lambda driver: driver.fetchval("SHOW statement_timeout")) == helds


@pytest.mark.parametrize("make", [ledger_connections, gate_connections])
@pytest.mark.parametrize(
    ("setting", "shown"),
    [(30.0, "9s"), (10.0, "9s"), (2.5, "2500ms"), (None, "9s"), (0.0, "9s")],
)
async def test_held_connections_are_never_bounded_later_than_the_client_gives_up(
    database_url: str, make, setting: float | None, shown: str
) -> None:
    # No bound from the services (None, or 0: "no limit") is still the client's: a statement the
    # client gave up on does not run on in the server.
    _postgres_only(database_url)
    held = make(database_url, statement_timeout_s=setting)
    try:
        assert await held.call(lambda driver: driver.fetchval("SHOW statement_timeout")) == shown
    finally:
        await held.close()


@pytest.mark.parametrize("make", [ledger_connections, gate_connections])
async def test_the_server_cancels_a_statement_past_the_bound_and_the_connection_is_kept(
    database_url: str, make
) -> None:
    _postgres_only(database_url)
    held = make(database_url, statement_timeout_s=0.3)
    try:
        first = await held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid()"))
        started = time.monotonic()
        with pytest.raises(QueryCanceledError):  # the server's answer: a 503 to the request
            await held.call(lambda driver: driver.fetch("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 2
        # The server answered: the connection is fine, and kept.
        assert await held.call(lambda driver: driver.fetchval("SELECT pg_backend_pid()")) == first
    finally:
        await held.close()
