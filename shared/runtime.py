"""Resources a service opens in its FastAPI lifespan (never at import) and closes on shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import KeyCache
from shared.cancellation import raise_if_cancelled
from shared.db.engine import create_engine, session_factory
from shared.kafka.producer import LINGER_MS, make_producer
from shared.kafka.topics import ensure_topics
from shared.logging import configure_logging
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

# Longest a closing service waits for its producer to flush and close. A broker that answers takes
# milliseconds; a black-holed one held ``stop`` for a request timeout (30 s) per batch it still
# held, past the pod's grace period (60 s), and the process was killed before closing its pool.
# Cut short, nothing is lost: the services count a send as done only once the broker acknowledged
# it. Until then its outbox row stays (intake's sends in limbo, the router's and the SLA scanner's
# rows) or the offset of the message it dead-letters is not committed, so whatever the stopped
# producer still held is sent again after the restart.
PRODUCER_CLOSE_TIMEOUT_S = 5.0
# Likewise the database pool: on a black-holed database asyncpg's close of each pooled connection
# waits out its command timeout (DATABASE_STATEMENT_TIMEOUT_S + 5 s), one after the other; 10 of
# them held shutdown for minutes. Cut short, the process exits and the kernel drops the sockets.
ENGINE_CLOSE_TIMEOUT_S = 5.0
# Longest a closing service waits for its background tasks (the outbox relay, pruners, refreshes)
# once cancelled. Each ends at its next await; one still running has lost its cancellation (a bug:
# see raise_if_cancelled) and would hold the shutdown for good: it is left behind, so the producer
# and the pool are still closed and the process exits.
TASK_STOP_TIMEOUT_S = 5.0
# Longest uvicorn lets requests in flight finish after SIGTERM before the lifespan shutdown starts.
HTTP_SHUTDOWN_TIMEOUT_S = 20


@dataclass
class Resources:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    keys: KeyCache

    async def close(self) -> None:
        """Stop the producer and close the pool, each given up after its bound. Both at once:
        neither needs the other, and a network partition can take the broker and the database
        away together."""
        await asyncio.gather(self._stop_producer(), self._close_pool())

    async def _stop_producer(self) -> None:
        await close_within(
            self.producer.stop(),
            PRODUCER_CLOSE_TIMEOUT_S,
            "producer did not stop in time; what it still held is published again after the restart",
        )

    async def _close_pool(self) -> None:
        await close_within(
            self.engine.dispose(), ENGINE_CLOSE_TIMEOUT_S, "database pool did not close in time"
        )


async def close_within(
    closing: Awaitable[object], seconds: float, message: str, *, level: int = logging.WARNING, **extra: object
) -> None:
    """Await ``closing`` for at most ``seconds``; past that, give it up and log ``message`` at
    ``level`` (a stop that waits on a black-holed broker or database must not outlast the grace
    period)."""
    try:
        await asyncio.wait_for(closing, timeout=seconds)
    except TimeoutError:
        log.log(level, message, extra={**extra, "seconds": seconds})


async def start_producer(producer: AIOKafkaProducer, attempts: int = 60) -> None:
    for attempt in range(attempts):
        try:
            await producer.start()
            return
        except (KafkaError, OSError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)


async def open_resources(
    settings: CommonSettings, *, linger_ms: int = LINGER_MS, broker_required: bool = True
) -> Resources:
    """The database engine, the producer and the key cache. With ``broker_required=False`` the
    producer is returned unstarted: the caller runs :func:`connect_when_reachable`."""
    engine = create_engine(
        settings.database_url,
        statement_timeout_s=settings.database_statement_timeout_s,
        idle_in_transaction_timeout_s=settings.database_idle_in_transaction_timeout_s,
        connect_timeout_s=settings.database_connect_timeout_s,
    )
    sessions = session_factory(engine)
    producer = make_producer(settings, linger_ms=linger_ms)
    if broker_required:
        await ensure_topics(settings)
        await start_producer(producer)
    return Resources(engine=engine, sessions=sessions, producer=producer, keys=KeyCache(sessions))


async def connect_when_reachable(settings: CommonSettings, producer: AIOKafkaProducer) -> None:
    """Create the topics and start ``producer`` once the broker answers, however long that takes.
    Intake starts without the broker (it needs only its database): until then a send waits for
    metadata that never comes, times out, and the ticket is kept in the outbox."""
    while True:
        try:
            await ensure_topics(settings)
            await start_producer(producer)
        except (RuntimeError, KafkaError, OSError) as exc:
            log.warning("broker not reachable yet; tickets wait in the outbox", extra={"error": repr(exc)})
            await asyncio.sleep(1.0)
        else:
            log.info("connected to the broker")
            return


def freeze_startup_heap() -> None:
    """Leave everything allocated at start-up (modules, the app, ORM mappers, models) out of later
    garbage collections: a full collection walks every tracked object, a pause of tens of
    milliseconds on whatever request or batch is in flight when it strikes."""
    gc.collect()
    gc.freeze()


# A request allocates a few hundred container objects, nearly all freed as it ends. With Python's
# default first threshold (700) intake ran a young collection every few requests and a full one
# (walking every object alive since start-up that was not frozen) every ~500: ~30 µs of a
# webhook's CPU (measured with gc.callbacks at 2,600 webhooks/s). At 10,000 a young collection is
# rare and short (~1 ms for 10,000 objects).
REQUEST_SERVER_GC_THRESHOLDS = (10_000, 10, 10)


def tune_collector_for_requests() -> None:
    """Collect far less often than Python's default in a server of short requests."""
    gc.set_threshold(*REQUEST_SERVER_GC_THRESHOLDS)


# A batch consumer allocates a few hundred container objects per event (decoded envelopes and
# snapshots, states, routing events, their dicts) and drops nearly all of them when the batch
# ends. With Python's default thresholds (700, 10, 10) the collector runs after every 700 of
# them and walks everything alive (the batch in hand included) every 70,000: the router spent
# ~10 % of its CPU there at batches of 2,000 (in-process on PostgreSQL, 244 -> 222 µs per ticket;
# 100,000 and 200,000 measured alike, peak memory unchanged). Intake's are lower (above): a
# young collection of 100,000 objects would be a pause of milliseconds inside one request.
BATCH_CONSUMER_GC_THRESHOLDS = (100_000, 20, 20)


def tune_collector_for_batches() -> None:
    """Run the cycle collector about once per batch rather than hundreds of times per batch."""
    gc.set_threshold(*BATCH_CONSUMER_GC_THRESHOLDS)


def serve(
    create_app: Callable[[], FastAPI], settings: CommonSettings, service: str, host: str, port: int
) -> None:
    """Run one service under uvicorn with uvloop; SIGTERM/SIGINT trigger a graceful lifespan shutdown."""
    configure_logging(service, settings.log_level, settings.log_json)
    config = uvicorn.Config(
        create_app(),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=HTTP_SHUTDOWN_TIMEOUT_S,
        # uvicorn's default (5 s) is below the idle timeout of common load balancers, which then
        # send a request on a connection the service is closing: intermittent 502s for senders.
        timeout_keep_alive=settings.http_keep_alive_s,
    )
    uvicorn.Server(config).run()


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], seconds: float | None = None) -> None:
    """Cancel ``tasks`` and wait, at most ``seconds`` (:data:`TASK_STOP_TIMEOUT_S`), for them to
    end. One still running then is logged (an error) and left behind; one that had failed is
    logged, not raised."""
    seconds = TASK_STOP_TIMEOUT_S if seconds is None else seconds
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        log.error(
            "background task did not end when cancelled; shutting down without it",
            extra={"task": task.get_name(), "seconds": seconds},
        )
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "background task had failed", extra={"task": task.get_name(), "error": repr(task.exception())}
            )


async def repeat_forever(
    step: Callable[[], Awaitable[object]], period_s: float, logger: logging.Logger, failure: str
) -> None:
    """Run ``step``, then sleep ``period_s``, for the life of the service (until cancelled).

    A failed step is logged as ``failure`` (a warning, with the error) and retried at the next
    period: the background jobs that use this keep their state in the database or in memory, so a
    database or broker blip delays them and stops nothing."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()  # the error may stand for a cancellation (see there)
            logger.warning(failure, extra={"error": repr(exc)})
        await asyncio.sleep(period_s)
