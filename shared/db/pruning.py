"""Deleting old rows of ever-growing bookkeeping tables in bounded chunks.

A single ``DELETE ... WHERE at < cutoff`` over an hour of a busy table (1.8 million event ids at
500 tickets/s) holds SQLite's one write lock for seconds, stalling every routing batch, and makes
one huge transaction on PostgreSQL. Chunks of a few thousand rows, each its own transaction, keep
every stall short; a replica pruning the same rows at the same time only finds fewer left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Table, delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.dialect import is_postgres

PRUNE_CHUNK = 5_000
# Earlier than anything stored: nothing is older.
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def cutoff(now: datetime, retention: timedelta) -> datetime:
    """``now - retention``: what is older goes. A retention reaching past year 1 (one set to keep
    things for good) gives the earliest instant, where the subtraction would raise OverflowError."""
    try:
        return now - retention
    except OverflowError:
        return _EARLIEST


async def delete_in_chunks(
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    condition: ColumnElement[bool],
    chunk: int = PRUNE_CHUNK,
) -> int:
    """Delete the rows of ``table`` that match ``condition``, ``chunk`` rows per transaction, until
    a chunk comes back short; returns how many were deleted. ``condition`` should be served by an
    index, as each chunk looks the rows up again.

    Rows are named by their physical address (PostgreSQL's ``ctid``, SQLite's ``rowid``): a delete
    by primary key joined the whole table on PostgreSQL (a hash join over a sequential scan) where
    a list of addresses is a direct fetch of each row."""
    total = 0
    while True:
        async with sessions() as session, session.begin():
            address: ColumnElement[object] = literal_column("ctid" if is_postgres(session) else "rowid")
            victims = select(address).select_from(table).where(condition).limit(chunk)
            # The condition again: a row updated meanwhile is deleted only if it still matches.
            result = await session.execute(delete(table).where(address.in_(victims), condition))
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += deleted
        if deleted < chunk:
            return total
