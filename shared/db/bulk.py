"""Many-row INSERTs and key lookups as one statement on PostgreSQL, whatever the row count.

A Core ``executemany`` costs SQLAlchemy ~15 µs of parameter processing per row, and asyncpg then
runs one INSERT per row on the server. The router writes four rows per ticket (claim, ticket,
decision, outbox), so on PostgreSQL the rows go instead as one array per column into
``INSERT ... SELECT ... FROM unnest(...)``: one statement whatever the batch size, values encoded
by the driver. Each value still goes through its column type's own bind processor (UTC check,
JSON serialiser), so what is stored does not change. SQLite keeps the plain Core statements.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, ColumnElement, Table, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.db.dialect import conflict_insert, is_postgres


@dataclass(frozen=True)
class _UnnestInsert:
    sql: str
    processors: tuple[Callable[[Any], Any] | None, ...]
    defaults: tuple[tuple[str, Any], ...]  # (column, ColumnDefault) filled in when rows lack them


@functools.lru_cache(maxsize=128)  # per (table, columns, dialect): a few per process
def _unnest_insert(
    table: Table, columns: tuple[str, ...], dialect: Dialect, skip_conflicts: bool, returning: str | None
) -> _UnnestInsert | None:
    defaults = tuple(
        (column.key, column.default)
        for column in table.columns
        if column.key not in columns and column.default is not None and not column.primary_key
    )
    if any(not (default.is_scalar or default.is_callable) for _, default in defaults):
        return None  # a SQL-expression default: left to the Core statement
    names = columns + tuple(name for name, _ in defaults)
    arrays, selected, processors = [], [], []
    for position, name in enumerate(names, start=1):
        column: Column[Any] = table.columns[name]
        impl = column.type.dialect_impl(dialect)
        processors.append(impl.bind_processor(dialect))
        if isinstance(column.type, JSON) or isinstance(impl, JSON):
            # Serialised by the column's processor; the array carries text, cast per element.
            arrays.append(f"${position}::TEXT[]")
            selected.append(f"u.c{position}::{column.type.compile(dialect=dialect)}")
        else:
            arrays.append(f"${position}::{column.type.compile(dialect=dialect)}[]")
            selected.append(f"u.c{position}")
    aliases = ", ".join(f"c{position}" for position in range(1, len(names) + 1))
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    # ORDER BY the ordinality: rows are inserted, and serial ids drawn, in the given order.
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({quoted}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) "
        f"WITH ORDINALITY AS u({aliases}, ordinal) ORDER BY u.ordinal"
    )
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {dialect.identifier_preparer.quote(returning)}"
    return _UnnestInsert(sql, tuple(processors), defaults)


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_conflicts: bool = False,
    returning: Column[Any] | None = None,
) -> list[Any]:
    """Insert ``rows`` (all with the same keys) in the given order; with ``returning``, that
    column of the inserted rows, in no promised order (serial ids are drawn in row order: sorted,
    they match the rows). ``skip_conflicts``: rows violating a unique constraint are left out.

    Columns the rows leave out get their Python-side default, evaluated once per call (SQLAlchemy
    evaluates it per row; for a timestamp default the batch then shares one instant).
    """
    if not rows:
        return []
    columns = tuple(rows[0])
    connection = await session.connection()
    plan = None
    if is_postgres(session):
        plan = _unnest_insert(
            table, columns, connection.dialect, skip_conflicts, None if returning is None else returning.key
        )
    if plan is None:
        statement: Any = conflict_insert(session, table)
        if skip_conflicts:
            statement = statement.on_conflict_do_nothing()
        if returning is None:
            await session.execute(statement, list(rows))
            return []
        # Not sort_by_parameter_order: SQLite would then insert the rows one statement each.
        # Multi-row VALUES pages draw serial ids in row order all the same.
        statement = statement.returning(returning)
        return list((await session.scalars(statement, list(rows))).all())
    arrays = [[row[name] for row in rows] for name in columns]
    for _, default in plan.defaults:
        value = default.arg(None) if default.is_callable else default.arg
        arrays.append([value] * len(rows))
    parameters = tuple(
        values if processor is None else [processor(value) for value in values]
        for values, processor in zip(arrays, plan.processors, strict=True)
    )
    result = await connection.exec_driver_sql(plan.sql, parameters)
    return [] if returning is None else list(result.scalars().all())


def among(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], values: Collection[Any], session: AsyncSession
) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL ``column = ANY(array)``: one parameter, where IN
    renders (and SQLAlchemy processes) one parameter per value on every execution."""
    if is_postgres(session):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)
