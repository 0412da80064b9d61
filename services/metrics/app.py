"""The metrics service: live backlog state from the event streams, exported to Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import REGISTRY

from services.metrics.backlog import BacklogCollector
from services.metrics.ingest.consumer import BacklogIngest
from shared.auth import Role, require_role
from shared.events import utc_now
from shared.http.health import Check, broker_check, database_check, health_router, install_timing
from shared.http.problems import install_problem_handlers
from shared.kafka.checks import consumer_check
from shared.kafka.runner import ConsumerRunner
from shared.runtime import open_resources
from shared.settings import MetricsSettings

log = logging.getLogger(__name__)

backlog_router = APIRouter(prefix="/v1", tags=["backlog"])


@backlog_router.get("/backlog", summary="Backlog summary per team (JSON)")
async def backlog(request: Request, _role: Role = Depends(require_role(Role.VIEWER))) -> dict[str, Any]:
    ingest: BacklogIngest = request.app.state.ingest
    ingest.state.advance_clock(utc_now())
    return ingest.state.summary()


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await open_resources(settings)
        ingest = BacklogIngest(resources.sessions, name=settings.metrics_group_id)
        await ingest.restore()
        collector = _LiveCollector(ingest)
        REGISTRY.register(collector)
        runner = ConsumerRunner(
            settings,
            resources.producer,
            group_id=settings.metrics_group_id,
            topics=[settings.topic_ticket_events, settings.topic_routing_events],
            handler=ingest,
            on_assign=ingest.on_assign,
        )
        app.state.settings = settings
        app.state.sessions = resources.sessions
        app.state.keys = resources.keys
        app.state.ingest = ingest
        app.state.checks = {
            "database": database_check(resources.engine),
            "broker": broker_check(resources.producer),
            "consumer": consumer_check(runner),
            "caught_up": _caught_up_check(runner),
        }
        await runner.start()
        ticker = asyncio.create_task(_checkpoint_and_tick(ingest, settings), name="checkpoint")
        try:
            yield
        finally:
            await runner.stop()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await ingest.checkpoint()  # the final, consistent state: a restart replays nothing
            REGISTRY.unregister(collector)
            await resources.close()

    app = FastAPI(
        title="Ticket router: metrics",
        version="0.1.0",
        description="Live backlog gauges for Prometheus and a JSON backlog summary.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_timing(app, "metrics")
    app.include_router(health_router())
    app.include_router(backlog_router)
    return app


class _LiveCollector(BacklogCollector):
    """Follows ``ingest.state``, which a restore replaces."""

    def __init__(self, ingest: BacklogIngest) -> None:
        super().__init__(ingest.state)
        self.ingest = ingest

    def collect(self):  # type: ignore[no-untyped-def]
        self.state = self.ingest.state
        return super().collect()


def _caught_up_check(runner: ConsumerRunner) -> Check:
    """Ready once the state has been replayed up to the end of every partition at least once."""
    seen_caught_up = False

    async def check() -> str | None:
        nonlocal seen_caught_up
        if (
            not seen_caught_up
            and runner.loop.assigned_once
            and runner.loop.lag
            and runner.loop.total_lag() == 0
        ):
            seen_caught_up = True
        return None if seen_caught_up else "replaying events since the last checkpoint"

    return check


async def _checkpoint_and_tick(ingest: BacklogIngest, settings: MetricsSettings) -> None:
    loop = asyncio.get_running_loop()
    last_checkpoint = loop.time()
    while True:
        await asyncio.sleep(settings.metrics_clock_tick_s)
        try:
            ingest.state.advance_clock(utc_now())
            if loop.time() - last_checkpoint >= settings.metrics_checkpoint_interval_s:
                await ingest.checkpoint()
                last_checkpoint = loop.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("checkpoint failed, will retry", extra={"error": repr(exc)})
