"""Intake's own connections (the delivery ledger's and the outbox gate's) carry the services'
statement bound (``DATABASE_STATEMENT_TIMEOUT_S``), as its pool does. Before, they had only the
client's own bound (``services.intake.held.STATEMENT_TIMEOUT_S``): a statement given up on there
(its connection discarded) ran on in PostgreSQL, a record holding the row locks it took, for as
long as it took."""

from __future__ import annotations

import time

import pytest
from asyncpg.exceptions import QueryCanceledError
from sqlalchemy import text

from services.intake import app as intake_app
from services.intake.app import create_app
from services.intake.held import gate_connections, ledger_connections
from shared.settings import IntakeSettings


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's statement_timeout (SQLite's statements wait out busy_timeout)")


async def test_intakes_connections_take_the_services_statement_timeout(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _postgres_only(database_url)
    monkeypatch.setattr(intake_app, "BROKER_WAIT_AT_START_S", 0)  # no broker needed: its port is shut
    settings = IntakeSettings(
        database_url=database_url, database_statement_timeout_s=1.5, kafka_bootstrap_servers="127.0.0.1:9"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        publisher = app.state.publisher
        async with app.state.resources.engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "1500ms"
        for held in (publisher.ledger.held, publisher.gate.held):
            assert await held.call(lambda driver: driver.fetchval("SHOW statement_timeout")) == "1500ms"


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
