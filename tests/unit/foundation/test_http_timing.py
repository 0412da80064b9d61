"""Request latency is recorded per route template and status, never per raw path; /metrics can
return only the named series."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from shared.http.health import health_router, install_timing


def count(service: str, route: str, status: str) -> float:
    labels = {"service": service, "method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0


async def test_latency_is_counted_per_route_template_and_status():
    app = FastAPI()
    install_timing(app, "timing-test")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(404)
        return {"id": item_id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/items/1", "/items/2", "/items/0", "/nowhere"):
            await client.get(path)
        await client.get("/items/3")
    assert count("timing-test", "/items/{item_id}", "200") == 3
    assert count("timing-test", "/items/{item_id}", "404") == 1
    assert count("timing-test", "unmatched", "404") == 1


async def test_metrics_endpoint_can_return_only_the_named_series():
    registry = CollectorRegistry()
    wanted = Counter("probe_wanted", "kept", registry=registry)
    Counter("probe_other", "filtered out", registry=registry).inc(5)
    wanted.inc(3)
    app = FastAPI()
    app.include_router(health_router(registry))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        everything = (await client.get("/metrics")).text
        only = (await client.get("/metrics", params={"name[]": "probe_wanted_total"})).text
    assert "probe_wanted_total 3.0" in everything and "probe_other_total 5.0" in everything
    assert "probe_wanted_total 3.0" in only and "probe_other" not in only


def test_each_service_is_exported_from_the_moment_its_app_exists() -> None:
    # ServiceAbsent looks for this series: an instance that has not served a request has no
    # request series yet, and must not count as absent.
    from importlib import metadata

    from services.intake.app import create_app as intake_app
    from services.metrics.app import create_app as metrics_app
    from services.router.app import create_app as router_app

    version = metadata.version("ticket-router")
    install_timing(FastAPI(), "info-test")
    assert REGISTRY.get_sample_value("service_info", {"service": "info-test", "version": version}) == 1
    assert count("info-test", "unmatched", "404") == 0  # no request made
    for service, create in (("intake", intake_app), ("router", router_app), ("metrics", metrics_app)):
        create()
        assert REGISTRY.get_sample_value("service_info", {"service": service, "version": version}) == 1
