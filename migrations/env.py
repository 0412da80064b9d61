"""Alembic environment: async engine, URL from the settings (DATABASE_URL)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from migrations.metadata import metadata
from shared.db.engine import create_engine
from shared.settings import CommonSettings

config = context.config


def _url() -> str:
    return config.attributes.get("database_url") or CommonSettings().database_url


# Two runs at once (a deploy job started twice, `make migrate` beside `make run`) must not both
# apply the same revisions: the second failed ("relation alembic_version already exists") or
# altered a table the first was copying. Each run waits for the other, then finds the schema at
# the heads and has nothing left to do.
MIGRATION_LOCK_KEY = 0x7469636B65746D67  # "ticketmg": any key no other lock of ours uses
MIGRATION_LOCK_POLL_S = 0.5


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """An exclusive lock on a file beside the SQLite database, held for the run."""
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # A session lock: it outlives the commits of alembic's autocommit blocks (0008), and the
        # connection's end releases it should the run die. Tried, not waited for: a run blocked in
        # pg_advisory_lock holds a snapshot, which the other run's CREATE INDEX CONCURRENTLY
        # (0008) would wait for in turn.
        try_lock = text("SELECT pg_try_advisory_lock(:key)")
        while not connection.execute(try_lock, {"key": MIGRATION_LOCK_KEY}).scalar():
            connection.commit()
            time.sleep(MIGRATION_LOCK_POLL_S)
        connection.commit()  # alembic runs the migrations in a transaction of its own
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = _url()
    engine = create_engine(url)
    try:
        with _sqlite_file_lock(url) if engine.dialect.name == "sqlite" else contextlib.nullcontext():
            async with engine.connect() as connection:
                await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
