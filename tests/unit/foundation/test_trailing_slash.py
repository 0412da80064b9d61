"""A path with a trailing slash the service does not serve (``/v1/teams/`` for ``/v1/teams``) is a
404 problem+json naming the path it serves, as any unknown path is, not Starlette's bare 307."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.router.app import create_app as router_app
from shared.http.problems import PROBLEM_JSON
from shared.settings import IntakeSettings, MetricsSettings, RouterSettings

CASES: list[tuple[Callable[[], FastAPI], str, str, str]] = [
    (lambda: router_app(RouterSettings()), "GET", "/v1/teams/", "/v1/teams"),
    (lambda: router_app(RouterSettings()), "PUT", "/v1/rules/", "/v1/rules"),
    (lambda: router_app(RouterSettings()), "GET", "/healthz/", "/healthz"),
    (lambda: intake_app(IntakeSettings()), "POST", "/v1/tickets/", "/v1/tickets"),
    (lambda: intake_app(IntakeSettings()), "GET", "/v1/sources/", "/v1/sources"),
    (lambda: metrics_app(MetricsSettings()), "GET", "/v1/backlog/", "/v1/backlog"),
    (lambda: metrics_app(MetricsSettings()), "GET", "/readyz/", "/readyz"),
]


@pytest.mark.parametrize(("make", "method", "path", "served"), CASES)
async def test_a_trailing_slash_is_a_problem_naming_the_path_served(
    make: Callable[[], FastAPI], method: str, path: str, served: str
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make()), base_url="http://t") as client:
        got = await client.request(method, path, content=b"{}", headers={"Content-Type": "application/json"})
    assert got.status_code == 404, got.headers
    assert got.headers["content-type"] == PROBLEM_JSON and "location" not in got.headers
    body = got.json()
    assert body["instance"] == path and served in body["detail"]


async def test_an_unknown_path_says_nothing_more() -> None:
    app = router_app(RouterSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for path in ("/v1/nothing/", "/v1/nothing"):
            got = await client.get(path)
            assert got.status_code == 404 and got.json()["detail"] == "Not Found"
