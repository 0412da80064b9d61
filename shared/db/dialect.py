"""What differs between our two databases (PostgreSQL in production, SQLite embedded), per session."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.base import Base


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def conflict_insert(session: AsyncSession, table: Table | type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT in the session's dialect, the one that has ``on_conflict_do_nothing`` and
    ``on_conflict_do_update`` (the generic INSERT has neither)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {name}")
