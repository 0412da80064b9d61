"""Which database errors a retry cures: the database being away, not the statement being wrong."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATEs a retry cures: connection trouble (08), insufficient resources such as too many
# connections (53), a server shutting down or starting up (57P0x), a cancelled statement (57014),
# serialization failures and deadlocks (40001, 40P01), a lock not available (55P03).
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P0", "57014", "40001", "40P01", "55P03")


def is_transient_database_error(exc: BaseException) -> bool:
    # PoolTimeout: no pooled connection came free in time (a slow database, a busy API).
    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # asyncpg's server errors arrive as a plain DBAPIError (not OperationalError): read the code.
    cause = exc.orig.__cause__ if exc.orig is not None else None
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
    transient_code = isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    return exc.connection_invalidated or transient_code
