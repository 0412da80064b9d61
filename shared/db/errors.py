"""Which database errors a retry cures: the database being away, not the statement being wrong."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATEs a retry cures: connection trouble (08), insufficient resources such as too many
# connections (53), a server shutting down or starting up (57P0x), serialization failures and
# deadlocks (40001, 40P01), a lock not available (55P03). Not a cancelled statement (57014), what
# DATABASE_STATEMENT_TIMEOUT_S raises: a statement that outlives it every time is its message's
# failure, and retried as an outage it held its partition for good. A server that stops answering
# fails on asyncpg's command_timeout instead (shared/db/engine.py), an outage.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P0", "40001", "40P01", "55P03")
_STATEMENT_TIMEOUT = "57014"

# SQLite reports a bad statement ("no such column", "too many SQL variables", a syntax error) as an
# OperationalError, as it does another connection holding a lock. Transient are, by primary result
# code: the lock held elsewhere (BUSY, LOCKED, PROTOCOL: a lock race), the file or its disk failing
# or full (IOERR, CANTOPEN, FULL). Anything else fails the same way when retried.
_TRANSIENT_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_FULL,
    }
)
# Their messages, for an error that carries no code (raised by a driver rather than by SQLite).
_TRANSIENT_SQLITE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "database schema is locked",
    "busy",
    "locking protocol",
    "disk i/o error",
    "unable to open database file",
    "database or disk is full",
)


def is_transient_database_error(exc: BaseException) -> bool:
    # PoolTimeout: no pooled connection came free in time (a slow database, a busy API).
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return _transient_sqlite(exc.orig)
    # Otherwise raised by the engine or the driver, never by PostgreSQL's answer (asyncpg's server
    # errors are a plain DBAPIError): the server unreachable or silent (shared/db/engine.py).
    if isinstance(exc, OperationalError):
        return True
    sqlstate = _sqlstate(exc)
    return isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)


def is_statement_timeout(exc: BaseException) -> bool:
    """PostgreSQL cancelled the statement (``statement_timeout``, or an operator's cancel)."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) == _STATEMENT_TIMEOUT


def _sqlstate(exc: DBAPIError) -> object:
    # asyncpg's error is the adapted error's cause; the adapted one copies its sqlstate.
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(exc.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)


def _transient_sqlite(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _TRANSIENT_SQLITE_CODES  # extended codes keep the primary in the low byte
    message = str(error).lower()
    return any(transient in message for transient in _TRANSIENT_SQLITE_MESSAGES)
