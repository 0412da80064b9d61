"""The intake service: webhooks and native tickets in, verified ticket events out to Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from services.intake.deliveries import prune_forever
from services.intake.held import gate_connections, ledger_connections
from services.intake.publisher import EventPublisher
from services.intake.receiver.endpoints import router as webhooks_router
from services.intake.receiver.limits import TokenBuckets
from services.intake.sources.cache import SourceCache
from services.intake.sources.endpoints import router as sources_router
from services.intake.tickets.endpoints import router as tickets_router
from shared.http.body_limit import BodyLimit
from shared.http.conditional import install_conditional_get
from shared.http.health import Check, broker_check, database_check, health_router, install_timing
from shared.http.methods import install_method_not_allowed
from shared.http.openapi import document_problems
from shared.http.problems import install_problem_handlers
from shared.http.query_params import refuse_unknown_query
from shared.http.raw_route import add_routes_first
from shared.http.slashes import install_strict_slashes
from shared.runtime import connect_when_reachable, freeze_startup_heap, open_resources, stop_tasks
from shared.settings import IntakeSettings

BROKER_WAIT_AT_START_S = 5.0


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The broker is not waited for: tickets are accepted into the outbox until it answers.
        resources = await open_resources(
            settings, linger_ms=settings.intake_producer_linger_ms, broker_required=False
        )
        # The bounds of the pool's connections (open_resources).
        connect_s, statement_s = settings.database_connect_timeout_s, settings.database_statement_timeout_s
        ledger = ledger_connections(
            settings.database_url, connect_timeout_s=connect_s, statement_timeout_s=statement_s
        )
        gate = gate_connections(
            settings.database_url, connect_timeout_s=connect_s, statement_timeout_s=statement_s
        )
        publisher = EventPublisher(
            resources.producer,
            resources.sessions,
            ledger,
            gate,
            settings.topic_ticket_events,
            settings.intake_publish_timeout_s,
        )
        app.state.settings = settings
        app.state.resources = resources
        app.state.sessions = resources.sessions
        app.state.keys = resources.keys
        app.state.publisher = publisher
        app.state.source_cache = SourceCache(resources.sessions, settings.intake_source_cache_ttl_s)
        app.state.rate_limits = TokenBuckets(
            settings.intake_rate_limit_per_s, settings.intake_rate_limit_burst
        )
        # Only the database gates readiness: with the broker away, intake still accepts tickets
        # into its outbox (202 "queued"), and a load balancer that took it out of rotation would
        # refuse them instead.
        app.state.checks = {"database": database_check(resources.engine)}
        app.state.degraded_checks = {
            "broker": broker_check(resources.producer),
            "outbox": _outbox_check(publisher),
        }
        connecting = asyncio.create_task(
            connect_when_reachable(settings, resources.producer), name="broker-connect"
        )
        # A broker that answers is connected before the first request, as it always was; one that
        # does not is waited for this long, then tickets go to the outbox until it answers.
        await asyncio.wait({connecting}, timeout=BROKER_WAIT_AT_START_S)
        tasks = [
            connecting,
            asyncio.create_task(publisher.relay_forever(settings.intake_outbox_poll_s), name="outbox-relay"),
            asyncio.create_task(
                prune_forever(
                    resources.sessions,
                    timedelta(days=settings.intake_delivery_retention_days),
                    settings.intake_delivery_prune_interval_s,
                ),
                name="delivery-pruner",
            ),
        ]
        freeze_startup_heap()
        try:
            yield
        finally:
            await stop_tasks(tasks)  # bounded: a task that lost its cancellation is left behind
            await ledger.close()
            await gate.close()
            await resources.close()

    app = FastAPI(
        title="Ticket router: intake",
        version="0.1.0",
        description="Receives tickets and ticketing-system webhooks, verifies, normalises, "
        "deduplicates and publishes them as ticket events.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    install_strict_slashes(app)  # a trailing-slash mismatch is a 404 problem, not a bare 307
    install_method_not_allowed(app)  # a 405's Allow lists every method the path serves
    # The admin API's refuse_non_json_body and refuse_unknown_query.
    document_problems(app, json_checked=("/v1/sources",), query_checked=("/v1/sources",))
    install_conditional_get(app)  # inside the timing: its status label says 304
    install_timing(app, "intake")
    # The hot path first and on the app itself: a ticket is not tried against the other routes.
    add_routes_first(app, tickets_router)
    add_routes_first(app, webhooks_router)
    app.include_router(health_router())
    # The admin API refuses a query parameter it does not declare; webhooks take the vendors'.
    app.include_router(sources_router, dependencies=[Depends(refuse_unknown_query)])
    app.add_middleware(AdminBodyLimit, max_bytes=settings.intake_max_body_bytes)
    return app


class AdminBodyLimit(BodyLimit):
    """:class:`BodyLimit` for the admin API only: FastAPI parses its bodies before the key check,
    so without a cap anyone could make the intake buffer and parse any amount. The webhook and
    ticket routes read their bodies themselves, capped at the same size, after their own checks
    (a webhook's unknown source is a 404 before its size)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_OWN_READERS):
            await super().__call__(scope, receive, send)
        else:
            await self.app(scope, receive, send)


_OWN_READERS = ("/v1/tickets", "/v1/webhooks/")


def _outbox_check(publisher: EventPublisher) -> Check:
    async def check() -> str | None:
        if publisher.degraded:
            return f"degraded: {publisher.outbox_pending} events waiting in the outbox for the broker"
        return None

    return check
