"""Engine and session factory. Created in each service's lifespan, never at import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.db.liveness import ping_when_idle

# The engine drives asyncpg and aiosqlite. The URLs platforms hand out (Heroku, RDS, compose files)
# name no driver and may carry libpq's sslmode, which SQLAlchemy would take for psycopg and asyncpg
# would refuse as an unknown keyword.
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def async_url(url: str) -> str:
    """``url`` with the async driver when it names none, and ``sslmode=`` as asyncpg's ``ssl=``
    (same values: require, verify-ca, verify-full...). Anything else, unreadable included, as is."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # unreadable: whoever connects reports it
        return url
    driver = _DEFAULT_DRIVERS.get(parsed.drivername, parsed.drivername)
    query = dict(parsed.query)
    if driver == "postgresql+asyncpg" and "sslmode" in query:
        query.setdefault("ssl", query["sslmode"])
        del query["sslmode"]
    if driver == parsed.drivername and query == dict(parsed.query):
        return url
    return parsed.set(drivername=driver, query=query).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def json_text(value: Any) -> str:
    """JSON columns' serializer: orjson, several times faster than ``json.dumps`` on the router's
    snapshots and SLA documents. Non-string keys become strings, as ``json.dumps`` does; what
    orjson refuses (integers beyond 64 bits) still goes through ``json.dumps``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


# Every SQLite connection's settings; create_engine's ``sqlite_pragmas`` overrides or adds to them.
# synchronous=FULL: in WAL mode NORMAL flushes the WAL only at checkpoints, so a power loss or an OS
# crash could roll back a commit that was acknowledged (a ticket parked in intake's outbox) or whose
# offsets were committed (a routing batch). FULL flushes the WAL at each commit.
SQLITE_PRAGMAS = {
    "journal_mode": "WAL",
    "synchronous": "FULL",
    "busy_timeout": "30000",
    "foreign_keys": "ON",
}


# How much later than the server's statement_timeout the client gives up on a statement. The server
# cancels at its next interrupt check (milliseconds) and its error must arrive first: a statement
# that timed out is the statement's failure (shared/db/errors.py), a silent server is an outage.
COMMAND_TIMEOUT_MARGIN_S = 5.0


def create_engine(
    url: str,
    *,
    sqlite_pragmas: dict[str, str] | None = None,
    statement_timeout_s: float | None = None,
    idle_in_transaction_timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """The engine of ``url``. ``statement_timeout_s`` (PostgreSQL; None or 0: no limit) bounds
    each statement: the server cancels it then, and asyncpg gives up on a server that has not
    answered :data:`COMMAND_TIMEOUT_MARGIN_S` later. ``idle_in_transaction_timeout_s``
    (PostgreSQL; None or 0: no limit): the server ends a session idle inside a transaction that
    long, and its locks go with it. Only the services pass them: migrations run long DDL and wait
    for each other's advisory lock. ``connect_timeout_s`` (PostgreSQL; None: asyncpg's 60 s) bounds
    opening a connection."""
    url = async_url(url)
    kwargs.setdefault("json_serializer", json_text)
    # A statement's parameters (a source's webhook secrets, a target's token) stay out of its
    # errors' text, which tracebacks and logs carry.
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Three processes share one SQLite file in dev: WAL lets readers run beside the writer
        # and busy_timeout makes writers queue instead of failing with "database is locked".
        if database and database != ":memory:":
            # Each aiosqlite connection is a thread: keep enough open for a busy service instead of
            # opening and closing overflow connections (and threads) per request.
            kwargs.setdefault("pool_size", 20)
            kwargs.setdefault("max_overflow", 20)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        pragmas = [
            f"PRAGMA {name}={value}" for name, value in {**SQLITE_PRAGMAS, **(sqlite_pragmas or {})}.items()
        ]

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in pragmas:
                cursor.execute(pragma)
            cursor.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # Checked only after sitting idle (shared/db/liveness.py) unless the caller says otherwise.
    pinged_when_idle = "pool_pre_ping" not in kwargs
    # Plan every execution for its parameters. asyncpg prepares each statement, and PostgreSQL then
    # switches to a cached generic plan, chosen with the statistics of that moment: the outbox (a
    # queue table: few live rows, thousands of dead ones between vacuums) and young tables kept a
    # sequential scan that grew with every row (a delete of 20 outbox rows reached 2-5 ms). Our
    # statements are simple, so planning each costs tens of microseconds.
    connect_args = dict(kwargs.pop("connect_args", {}))
    server_settings: dict[str, str] = {"plan_cache_mode": "force_custom_plan"}
    if statement_timeout_s:
        server_settings["statement_timeout"] = _milliseconds(statement_timeout_s)
        connect_args.setdefault("command_timeout", statement_timeout_s + COMMAND_TIMEOUT_MARGIN_S)
    if connect_timeout_s:
        connect_args.setdefault("timeout", connect_timeout_s)
    if idle_in_transaction_timeout_s:
        server_settings["idle_in_transaction_session_timeout"] = _milliseconds(idle_in_transaction_timeout_s)
    connect_args["server_settings"] = {**server_settings, **connect_args.get("server_settings", {})}
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if pinged_when_idle:
        ping_when_idle(engine)
    event.listen(engine.sync_engine, "do_connect", _unreachable_as_operational_error)
    event.listen(engine.sync_engine, "handle_error", _no_answer_as_disconnect)
    return engine


def _milliseconds(seconds: float) -> str:
    """A PostgreSQL time setting in milliseconds (its unit when none is given), at least 1: 0 means
    no limit there."""
    return str(max(1, round(seconds * 1000)))


def _unreachable_as_operational_error(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect; a server that cannot be reached (refused, reset, unresolvable, timed out) fails as
    the driver's OperationalError. asyncpg raises OSError or TimeoutError there, which SQLAlchemy
    passes on unwrapped: an API request that met PostgreSQL stopped or restarting was answered 500
    (a bug) instead of the 503 and Retry-After of any other moment the database is away
    (shared/http/problems.py, shared/db/errors.py)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, TimeoutError) as exc:
        raise dialect.loaded_dbapi.OperationalError(f"cannot reach the database: {exc!r}") from exc


def _no_answer_as_disconnect(context: ExceptionContext) -> BaseException | None:
    """A statement asyncpg gave up on (``command_timeout``: the server did not answer) fails as the
    driver's OperationalError, its connection invalidated (its statement may still run, its link
    may be dead). asyncpg raises TimeoutError, which SQLAlchemy passes on unwrapped: an API request
    was answered 500 (a bug) instead of the 503 of any other moment the database is away."""
    if not isinstance(context.original_exception, TimeoutError):
        return None
    context.is_disconnect = True
    driver_error = context.dialect.loaded_dbapi.OperationalError(
        f"no answer from the database in time: {context.original_exception!r}"
    )
    return OperationalError(
        context.statement,
        context.parameters,
        driver_error,
        hide_parameters=True,
        connection_invalidated=True,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
