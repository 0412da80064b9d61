"""The metrics service: live backlog state from the event streams, exported to Prometheus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import REGISTRY, Gauge

from services.metrics.backlog import BacklogCollector, BacklogConfig, BacklogState, FlowCollector
from services.metrics.backlog.snapshot import Snapshot
from services.metrics.backlog.views import summary
from services.metrics.ingest.consumer import BacklogIngest
from services.metrics.ingest.runner import ingest_runner
from services.metrics.schemas import BacklogSummary
from shared.auth import Role, require_role
from shared.cancellation import raise_if_cancelled
from shared.http.health import Check, broker_check, database_check, health_router, install_timing
from shared.http.methods import install_method_not_allowed
from shared.http.openapi import document_problems, problem_responses
from shared.http.problems import install_problem_handlers
from shared.http.query_params import refuse_unknown_query
from shared.http.slashes import install_strict_slashes
from shared.kafka.checks import consumer_check, same_partition_counts
from shared.kafka.runner import ConsumerRunner
from shared.runtime import freeze_startup_heap, open_resources, stop_tasks
from shared.settings import MetricsSettings

log = logging.getLogger(__name__)

backlog_router = APIRouter(prefix="/v1", tags=["backlog"])
CAUGHT_UP = Gauge(
    "metrics_backlog_caught_up", "1 once every owned partition was replayed to its end since assignment"
)


@backlog_router.get(
    "/backlog",
    summary="Backlog summary per team (JSON)",
    response_model=BacklogSummary,
    responses=problem_responses(
        {401: "Missing, unknown or revoked API key", 403: "The API key lacks the viewer role"}, (401, 403)
    ),
)
async def backlog(request: Request, _role: Role = Depends(require_role(Role.VIEWER))) -> dict[str, Any]:
    collector: BacklogCollector = request.app.state.collector
    return summary(collector.snapshot())  # the union of this instance's partitions


def create_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await open_resources(settings)
        # Shards are restored from their checkpoints as partitions are assigned (on_assign).
        ingest = BacklogIngest(resources.sessions, name=settings.metrics_group_id)
        collector = ShardsCollector(ingest, backlog_config(settings))
        flows = FlowCollector(collector)
        REGISTRY.register(collector)
        REGISTRY.register(flows)  # after it: a scrape's flows reuse its snapshot (see handoff)
        runner = ingest_runner(settings, resources.producer, ingest)
        caught_up = _caught_up(runner, ingest)
        app.state.settings = settings
        app.state.sessions = resources.sessions
        app.state.keys = resources.keys
        app.state.ingest = ingest
        app.state.collector = collector
        CAUGHT_UP.set_function(lambda: float(caught_up()))
        app.state.checks = {
            "database": database_check(resources.engine),
            "broker": broker_check(resources.producer),
            "consumer": consumer_check(runner),
            "partitions": same_partition_counts(
                runner, [settings.topic_ticket_events, settings.topic_routing_events]
            ),
            "caught_up": _caught_up_check(caught_up),
        }
        freeze_startup_heap()
        await runner.start()
        ticker = asyncio.create_task(_checkpoint_and_tick(ingest, settings, caught_up), name="checkpoint")
        try:
            yield
        finally:
            await stop_tasks([ticker])  # bounded: one that lost its cancellation is left behind
            # Finish the batch in hand, checkpoint every shard while the partitions are still ours
            # (closing the consumer does not call on_revoke), then leave the group: the next owner
            # or a restart replays nothing.
            await runner.drain()
            try:
                await ingest.checkpoint()
            except Exception as exc:  # the next owner replays from the previous checkpoint
                log.warning("final checkpoint failed", extra={"error": repr(exc)})
            await runner.stop()
            REGISTRY.unregister(flows)
            REGISTRY.unregister(collector)
            await resources.close()

    app = FastAPI(
        title="Ticket router: metrics",
        version="0.1.0",
        description="Live backlog gauges for Prometheus and a JSON backlog summary.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_strict_slashes(app)  # a trailing-slash mismatch is a 404 problem, not a bare 307
    install_method_not_allowed(app)  # a 405's Allow lists every method the path serves
    document_problems(app, query_checked=("/v1/",))
    install_timing(app, "metrics")
    app.include_router(health_router())
    # As on the other services' APIs: ?as_of=... or a misspelt filter is refused, not ignored.
    app.include_router(backlog_router, dependencies=[Depends(refuse_unknown_query)])
    return app


def backlog_config(settings: MetricsSettings) -> BacklogConfig:
    """The backlog configuration of ``settings``: the Erlang C handle times."""
    return BacklogConfig(
        default_handle_seconds=settings.metrics_handle_seconds,
        team_handle_seconds=tuple(sorted(settings.metrics_team_handle_seconds.items())),
    )


class ShardsCollector(BacklogCollector):
    """Exposes the union of the instance's shards (one state per owned partition), merged, with
    counters and histograms per partition."""

    def __init__(self, ingest: BacklogIngest, config: BacklogConfig | None = None) -> None:
        # The template state only provides the configuration; FlowCollector exposes the flows.
        # Its configuration is the merge's, so the forecast's handle times are the settings', not
        # those of whichever checkpoint a shard was restored from.
        # No clock: the ingest moves only the caught-up shards' clocks (replaying ones follow events).
        super().__init__(BacklogState(config), clock=None, include_flows=False)
        self.ingest = ingest

    def states(self) -> list[BacklogState]:
        return self.ingest.states()

    def snapshots(self) -> list[tuple[int | None, Snapshot]]:
        return list(self.ingest.snapshots())


def _caught_up(runner: ConsumerRunner, ingest: BacklogIngest) -> Callable[[], bool]:
    """Every assigned partition has its shard restored and was replayed to its end once since it
    was assigned (a rebalance that brings new partitions makes the instance unready until then).
    Not while the consumer (re)joins the group: a consumer replaced after a stuck rebalance has no
    partitions until it is assigned some, and an empty assignment is caught up only when settled."""

    def caught_up() -> bool:
        loop = runner.loop
        if not loop.assigned_once or loop.rebalance_started is not None:
            return False
        assignment = runner.consumer.assignment()
        ingest.drop_unassigned(assignment)  # settled: shards held over a replaced consumer go
        return ingest.caught_up(assignment, loop.lag)

    return caught_up


def _caught_up_check(caught_up: Callable[[], bool]) -> Check:
    async def check() -> str | None:
        return None if caught_up() else "replaying events since the last checkpoint"

    return check


async def _checkpoint_and_tick(
    ingest: BacklogIngest, settings: MetricsSettings, caught_up: Callable[[], bool]
) -> None:
    """Every ``metrics_clock_tick_s`` move the live shards' clocks, and every
    ``metrics_checkpoint_interval_s`` checkpoint the shards that changed: each on its own period
    (a checkpoint waits for no tick). A failed checkpoint is tried again an interval later."""
    loop = asyncio.get_running_loop()
    next_tick = loop.time() + settings.metrics_clock_tick_s
    next_checkpoint = loop.time() + settings.metrics_checkpoint_interval_s
    while True:
        await asyncio.sleep(max(0.0, min(next_tick, next_checkpoint) - loop.time()))
        now = loop.time()
        try:
            if now >= next_tick:
                next_tick = now + settings.metrics_clock_tick_s
                caught_up()  # shards read to their end go live, even with no event since (quiet topics)
                ingest.advance_clocks()
            if now >= next_checkpoint:
                next_checkpoint = now + settings.metrics_checkpoint_interval_s
                await ingest.checkpoint()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelled()  # the error may stand for a cancellation: the shutdown awaits us
            log.warning("checkpoint failed, will retry", extra={"error": repr(exc)})
