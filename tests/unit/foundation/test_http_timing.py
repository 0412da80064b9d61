"""Request latency is recorded per route template and status, never per raw path."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY

from shared.http.health import install_timing


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
