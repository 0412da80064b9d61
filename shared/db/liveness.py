"""Pooled connections are checked before use only when they sat idle.

SQLAlchemy's ``pool_pre_ping`` pings on every checkout. With asyncpg a ping is three round trips
(BEGIN, an empty query, ROLLBACK: SQLAlchemy wraps it in a transaction for PgBouncer), so a
consumer batch or an API request paid them before its first statement: ~4 ms of a ~41 ms router
batch at 500 tickets/s end to end, on 2 busy cores. A connection given back a
moment ago is almost surely alive, so, like HikariCP's ``aliveBypassWindowMs`` (500 ms), the
ping is skipped when the connection was last used less than ``PING_AFTER_IDLE_S`` ago.

If the server went away within that window anyway (a restart), the first statement fails as a
disconnect; SQLAlchemy then invalidates that connection and every older one in the pool, so one
operation fails and retries (the consumers retry a failed batch; the API answers 503), and the
next checkout connects afresh.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine

PING_AFTER_IDLE_S = 0.5
# In the pool entry's ``info``, which SQLAlchemy clears when it replaces the DBAPI connection.
_LAST_USED = "liveness_last_used"


def ping_when_idle(engine: AsyncEngine, idle_s: float = PING_AFTER_IDLE_S) -> None:
    """Ping a connection on checkout when it was idle for ``idle_s`` or more (use instead of
    ``pool_pre_ping``); a dead one is replaced, with every older one, before the caller gets it."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()  # fresh: no ping needed

    @event.listens_for(pool, "checkin")
    def _given_back(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:  # None: invalidated, its info is gone with it
            record.info[_LAST_USED] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last_used = record.info.get(_LAST_USED)
        if last_used is not None and time.monotonic() - last_used < idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool replaces this connection and the older ones, then checks out again.
                raise InvalidatePoolError("connection found dead on checkout") from exc
            raise
