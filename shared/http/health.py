"""Liveness, readiness and operational metrics endpoints every service mounts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Annotated, Literal

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A check returns None when fine, or a short reason; "degraded" checks do not fail readiness.
Check = Callable[[], Awaitable[str | None]]

# Every service's probes and Prometheus exposition (health_router): they answer whatever query
# string a probe or a scraper adds (shared/http/nul_guard.py).
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

HTTP_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template (never the raw path, to bound cardinality)",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Exported from the moment the app exists, so the first scrape of an instance shows its service
# (the ServiceAbsent alert): the request histogram has no series before a request was timed.
SERVICE_INFO = Gauge(
    "service_info", "1 per running service instance, and its version", ["service", "version"]
)


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """``ready``; ``degraded`` when only a check readiness does not need failed (still 200);
    ``unavailable`` (503) when one it needs failed, or there is none yet (still starting)."""

    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, str] = Field(description='By check: "ok", or why it failed')


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        try:
            async with asyncio.timeout(2):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database unreachable: {type(exc).__name__}"
        return None

    return check


def broker_check(producer: AIOKafkaProducer) -> Check:
    async def check() -> str | None:
        try:
            async with asyncio.timeout(2):
                await producer.client.fetch_all_metadata()
        except Exception as exc:
            return f"broker unreachable: {type(exc).__name__}"
        return None

    return check


def health_router(registry: CollectorRegistry = REGISTRY) -> APIRouter:
    """Mounted at app creation; the checks come from ``app.state.checks`` set in the lifespan."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is up", response_model=Liveness)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: what the service cannot work without is reachable",
        response_model=Readiness,
        # A probe's report, not a problem: the same document as the 200's, for probes and people.
        responses={
            503: {"model": Readiness, "description": "Not ready: a check that readiness needs failed"}
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, Check] = getattr(request.app.state, "checks", {})
        degraded_checks: dict[str, Check] = getattr(request.app.state, "degraded_checks", {})
        names = [*checks, *degraded_checks]
        results = await asyncio.gather(*(check() for check in [*checks.values(), *degraded_checks.values()]))
        report = {name: reason or "ok" for name, reason in zip(names, results, strict=True)}
        failed = any(report[name] != "ok" for name in checks) or not checks
        degraded = any(report[name] != "ok" for name in degraded_checks)
        status = "unavailable" if failed else "degraded" if degraded else "ready"
        return JSONResponse({"status": status, "checks": report}, status_code=503 if failed else 200)

    @router.get(
        "/metrics",
        summary="Prometheus exposition",
        description="All series, or with `name[]=` (repeatable) only the named series, as "
        "prometheus_client's own handlers do: a cheap probe for one value.",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def metrics(
        names: Annotated[list[str] | None, Query(alias="name[]", description="series names to keep")] = None,
    ) -> Response:
        source = registry.restricted_registry(names) if names else registry
        return Response(generate_latest(source), media_type=CONTENT_TYPE_LATEST)

    return router


class TimingMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): latency per route template and status."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # labels() resolves the child series under a lock on every call; resolve each one once.
        self._series: dict[tuple[str, str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            key = (scope["method"], str(getattr(route, "path", "unmatched")), str(status))
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = HTTP_SECONDS.labels(self.service, *key)
            series.observe(time.perf_counter() - started)


def install_timing(app: FastAPI, service: str) -> None:
    """Time the app's requests, and export ``service_info`` for ``service`` from now on."""
    app.add_middleware(TimingMiddleware, service=service)
    SERVICE_INFO.labels(service, _version()).set(1)


def _version() -> str:
    try:
        return metadata.version("ticket-router")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
