"""One lock for every change to the router's configuration: rule sets, SLA policies and business
calendars, and teams.

Each of these writes validates against the others (a rule set's teams and SLA policies must be
live, a policy the rules name cannot be deleted, a calendar must fit the policies on it, a team the
rules or policies name cannot go). Under PostgreSQL's READ COMMITTED two concurrent writers could
both pass their checks (delete a policy while a rule set naming it is saved) and commit an
inconsistent configuration. Every such write takes this lock before its first validation read, so
the writers run one after another and each reads what the previous one committed.

On SQLite the database's write lock does the same: pysqlite begins a transaction only at its first
write, so a no-op write makes the transaction a writer before its validation reads, as a routing
batch does; a second writer waits for the first to commit.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.dialect import is_postgres

# Arbitrary constant for pg_advisory_xact_lock, distinct from intake's relay lock (0x1A7A_4E01).
CONFIG_LOCK_KEY = 0x1A7A_C0F1
# SQLite: a no-op write makes the transaction a writer (as ``load.store.take_write_lock`` does for
# routing batches), on a table of its own so that it reads as what it is.
SQLITE_WRITE_LOCK = "DELETE FROM sla_config_versions WHERE 1 = 0"
_HELD = "router.config_lock"  # session.info key: the transaction that holds the lock


async def lock_config(session: AsyncSession) -> None:
    """Hold the configuration lock until the session's transaction ends (commit or rollback).

    Call it before reading what the write is checked against. Once per transaction: nested write
    paths (an edit calling ``save``) may call it again, which then costs no round trip."""
    held = session.info.get(_HELD)
    if held is not None and held is session.get_transaction():
        return
    if is_postgres(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CONFIG_LOCK_KEY})
    else:
        await session.execute(text(SQLITE_WRITE_LOCK))
    # The root transaction (savepoints share its lock); a later transaction is another object.
    session.info[_HELD] = session.get_transaction()
