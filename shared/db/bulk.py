"""Many-row INSERTs and key lookups as one statement on PostgreSQL, whatever the row count.

A Core ``executemany`` costs SQLAlchemy ~15 µs of parameter processing per row, and asyncpg then
runs one INSERT per row on the server. The router writes four rows per ticket (claim, ticket,
decision, outbox), so on PostgreSQL the rows go instead as one array per column into
``INSERT ... SELECT ... FROM unnest(...)``: one statement whatever the batch size, values encoded
by the driver. Each value still goes through its column type's own bind processor (UTC check,
JSON serialiser), so what is stored does not change. A column whose rows all hold the same value
(the batch's timestamp, the consumer's name, a new ticket's revision) goes as one scalar parameter:
the driver encodes and checks every array element one by one, ~40 % of a router batch's encoding.
SQLite keeps the plain Core statements.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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


@functools.lru_cache(maxsize=128)  # per (table, columns, constant columns, dialect): a few per process
def _unnest_insert(
    table: Table,
    columns: tuple[str, ...],
    constant: tuple[bool, ...],
    dialect: Dialect,
    skip_conflicts: bool,
    returning: str | None,
) -> _UnnestInsert | None:
    """The statement for ``columns`` plus the defaulted ones; ``constant`` marks, for every one of
    them, a column sent as one scalar parameter rather than an array."""
    defaults = _defaults(table, columns)
    if any(not (default.is_scalar or default.is_callable) for _, default in defaults):
        return None  # a SQL-expression default: left to the Core statement
    names = columns + tuple(name for name, _ in defaults)
    arrays, aliases, selected, processors = [], [], [], []
    for position, (name, scalar) in enumerate(zip(names, constant, strict=True), start=1):
        column: Column[Any] = table.columns[name]
        impl = column.type.dialect_impl(dialect)
        processors.append(impl.bind_processor(dialect))
        sql_type = column.type.compile(dialect=dialect)
        # JSON is serialised by the column's processor: the parameter carries text, cast here.
        json = isinstance(column.type, JSON) or isinstance(impl, JSON)
        if scalar:
            selected.append(f"${position}::TEXT::{sql_type}" if json else f"${position}::{sql_type}")
            continue
        arrays.append(f"${position}::TEXT[]" if json else f"${position}::{sql_type}[]")
        aliases.append(f"c{position}")
        selected.append(f"u.c{position}::{sql_type}" if json else f"u.c{position}")
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    # ORDER BY the ordinality: rows are inserted, and serial ids drawn, in the given order.
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({quoted}) "
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) "
        f"WITH ORDINALITY AS u({', '.join(aliases)}, ordinal) ORDER BY u.ordinal"
    )
    if skip_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {dialect.identifier_preparer.quote(returning)}"
    return _UnnestInsert(sql, tuple(processors))


@functools.lru_cache(maxsize=128)
def _defaults(table: Table, columns: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The Python-side defaults of the columns the rows leave out."""
    return tuple(
        (column.key, column.default)
        for column in table.columns
        if column.key not in columns and column.default is not None and not column.primary_key
    )


# Types whose equal values the driver encodes alike (float is left out: -0.0 == 0.0).
_SCALAR_TYPES = (str, bytes, int, datetime, type(None))


def _constant_columns(arrays: list[list[Any]]) -> tuple[bool, ...]:
    """Which columns hold one value in every row; at least one column stays an array (unnest
    needs one to give the row count)."""
    constant = [
        len(values) > 1 and type(values[0]) in _SCALAR_TYPES and values.count(values[0]) == len(values)
        for values in arrays
    ]
    if all(constant):
        constant[0] = False
    return tuple(constant)


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
    if is_postgres(session):
        inserted = await _insert_by_unnest(session, table, rows, skip_conflicts, returning)
        if inserted is not None:
            return inserted
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


async def _insert_by_unnest(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    skip_conflicts: bool,
    returning: Column[Any] | None,
) -> list[Any] | None:
    """insert_rows on PostgreSQL; None when the table needs the Core statement."""
    columns = tuple(rows[0])
    arrays = [[row[name] for row in rows] for name in columns]
    for _, default in _defaults(table, columns):
        value = default.arg(None) if default.is_callable else default.arg
        arrays.append([value] * len(rows))
    constant = _constant_columns(arrays)
    connection = await session.connection()
    returned = None if returning is None else returning.key
    plan = _unnest_insert(table, columns, constant, connection.dialect, skip_conflicts, returned)
    if plan is None:
        return None
    parameters = tuple(
        _parameter(values, processor, scalar)
        for values, processor, scalar in zip(arrays, plan.processors, constant, strict=True)
    )
    result = await connection.exec_driver_sql(plan.sql, parameters)
    return [] if returning is None else list(result.scalars().all())


def _parameter(values: list[Any], processor: Callable[[Any], Any] | None, scalar: bool) -> Any:
    if scalar:
        return values[0] if processor is None else processor(values[0])
    return values if processor is None else [processor(value) for value in values]


def among(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], values: Collection[Any], session: AsyncSession
) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL ``column = ANY(array)``: one parameter, where IN
    renders (and SQLAlchemy processes) one parameter per value on every execution."""
    if is_postgres(session):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def among_parameter(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], name: str, postgres: bool
) -> ColumnElement[bool]:
    """:func:`among` for a statement built once and run many times: the values come at execution,
    as the list parameter ``name``. Building a statement and its cache key on every execution cost
    a router batch ~0.1-0.3 ms of CPU per statement, more than running it."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))
