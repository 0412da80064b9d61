"""A method the path does not serve is a 405 problem+json whose ``Allow`` lists every method the
path does serve (RFC 9110 15.5.6), not just those of the first route registered for it."""

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

CASES: list[tuple[Callable[[], FastAPI], str, str, set[str]]] = [
    (lambda: router_app(RouterSettings()), "PATCH", "/v1/teams", {"GET", "POST"}),
    (lambda: router_app(RouterSettings()), "POST", "/v1/teams/billing", {"GET", "PATCH", "PUT", "DELETE"}),
    (lambda: router_app(RouterSettings()), "DELETE", "/v1/rules", {"GET", "PUT", "POST"}),
    (lambda: router_app(RouterSettings()), "POST", "/v1/sla/policies/gold", {"GET", "PUT", "DELETE"}),
    (lambda: router_app(RouterSettings()), "TRACE", "/v1/audit", {"GET"}),
    (lambda: intake_app(IntakeSettings()), "PUT", "/v1/sources/github-main", {"GET", "PATCH", "DELETE"}),
    (lambda: metrics_app(MetricsSettings()), "POST", "/v1/backlog", {"GET"}),
]


def _listed(header: str) -> set[str]:
    return {method.strip() for method in header.split(",")} - {"HEAD"}


@pytest.mark.parametrize(("make", "method", "path", "allowed"), CASES)
async def test_allow_lists_every_method_the_path_serves(
    make: Callable[[], FastAPI], method: str, path: str, allowed: set[str]
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make()), base_url="http://t") as client:
        got = await client.request(method, path)
    assert got.status_code == 405, got.text
    assert got.headers["content-type"] == PROBLEM_JSON
    assert _listed(got.headers["allow"]) == allowed
    body = got.json()
    assert body["instance"] == path and all(name in body["detail"] for name in allowed), body
