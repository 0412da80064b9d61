"""The router service: consumes ticket events, decides, records why, publishes routing events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI

from services.router.admin_routes import admin_routers
from services.router.classification import load_language_model
from services.router.classifiers.endpoints import router as classifiers_router
from services.router.classifiers.live import LiveClassifier
from services.router.retention import Retention, prune_forever
from services.router.routing.handler import RoutingHandler
from services.router.routing.policy import LiveRules
from services.router.slas.endpoints import router as slas_router
from services.router.slas.runtime import priority_matrix, start_sla_runtime
from services.router.tickets.endpoints import router as tickets_router
from services.router.writeback.endpoints import router as writeback_router
from shared.http.body_limit import BodyLimit
from shared.http.conditional import install_conditional_get
from shared.http.health import broker_check, database_check, health_router, install_timing
from shared.http.json_body import refuse_non_json_body, refuse_repeated_keys
from shared.http.methods import install_method_not_allowed
from shared.http.nul_guard import refuse_nul
from shared.http.openapi import document_problems
from shared.http.problems import install_problem_handlers
from shared.http.query_params import refuse_unknown_query
from shared.http.slashes import install_strict_slashes
from shared.kafka.checks import consumer_check
from shared.kafka.runner import ConsumerRunner
from shared.runtime import freeze_startup_heap, open_resources, stop_tasks
from shared.settings import RouterSettings


def retention(settings: RouterSettings) -> Retention:
    resolved = settings.router_resolved_retention_days
    feedback = settings.router_feedback_retention_days
    return Retention(
        dedup=timedelta(days=settings.router_dedup_retention_days),
        resolved=timedelta(days=resolved) if resolved is not None else None,
        feedback=timedelta(days=feedback) if feedback is not None else None,
    )


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = await open_resources(settings)
        sla = await start_sla_runtime(settings, resources.sessions, resources.producer)
        rules = LiveRules(
            resources.sessions,
            settings.router_default_team,
            priority_matrix(settings),
            before_applying=sla.sla.refresh,  # the policies a new rule names are loaded first
        )
        await rules.refresh()
        classifiers = LiveClassifier(resources.sessions, settings.router_classifier_below_threshold)
        await classifiers.refresh()
        handler = RoutingHandler(
            resources.sessions,
            resources.producer,
            settings.topic_routing_events,
            # One rule set and one classifier view per batch, whatever reloads meanwhile.
            lambda: rules.policy.bind(classifiers.view),
            options=sla.handler_options,
            outbox=sla.outbox,
        )
        runner = ConsumerRunner(
            settings,
            resources.producer,
            group_id=settings.router_group_id,
            topics=[settings.topic_ticket_events],
            handler=handler,
            on_assign=handler.on_assign,
            on_next_batch=handler.prepare_next,
            # The next batch is decoded in this batch's waits too, where the handler overlaps them.
            idle=handler.idle if handler.look_ahead else None,
        )
        app.state.settings = settings
        app.state.sessions = resources.sessions
        app.state.keys = resources.keys
        app.state.rules = rules
        app.state.classifiers = classifiers
        app.state.degraded_checks = {"classifier": classifiers.check}
        app.state.checks = {
            "database": database_check(resources.engine),
            "broker": broker_check(resources.producer),
            "consumer": consumer_check(runner),
        }
        background = [
            asyncio.create_task(rules.watch(settings.router_ruleset_poll_s), name="ruleset-watch"),
            asyncio.create_task(
                classifiers.watch(settings.router_classifier_poll_s), name="classifier-watch"
            ),
            asyncio.create_task(
                prune_forever(resources.sessions, retention(settings), settings.router_prune_interval_s),
                name="router-pruner",
            ),
        ]
        # Load the language model now (about a second), not in the first batch of tickets.
        await asyncio.to_thread(load_language_model)
        freeze_startup_heap()
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()
            # Side by side, each bounded: a task that lost its cancellation is left behind.
            await asyncio.gather(sla.stop(), stop_tasks(background))
            await resources.close()

    app = FastAPI(
        title="Ticket router: router",
        version="0.1.0",
        description="Classifies and routes tickets, tracks SLAs, and exposes the admin API.",
        lifespan=lifespan,
        # Before any operation's own checks: PostgreSQL stores no U+0000, in text or in JSONB.
        # A body that is not JSON is refused as such, not as a body of the wrong shape; one that
        # gives a key twice as such, not as whatever its last value says.
        dependencies=[Depends(refuse_non_json_body), Depends(refuse_nul), Depends(refuse_repeated_keys)],
    )
    install_problem_handlers(app)
    install_strict_slashes(app)  # a trailing-slash mismatch is a 404 problem, not a bare 307
    install_method_not_allowed(app)  # a 405's Allow lists every method the path serves
    # refuse_non_json_body is app-wide; refuse_unknown_query is on every /v1/ operation.
    document_problems(app, json_checked=("/",), query_checked=("/v1/",))
    # Before any operation: FastAPI parses a body before the key check.
    app.add_middleware(BodyLimit, max_bytes=settings.router_max_body_bytes)
    install_conditional_get(app)  # inside the timing: its status label says 304
    install_timing(app, "router")
    app.include_router(health_router())  # probes and scrapers add query strings of their own
    # Every other operation refuses a query parameter it does not declare (a typo filtered nothing).
    for api_router in (tickets_router, *admin_routers(), slas_router, writeback_router, classifiers_router):
        app.include_router(api_router, dependencies=[Depends(refuse_unknown_query)])
    return app
