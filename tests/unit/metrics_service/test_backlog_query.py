"""``GET /v1/backlog`` takes no query parameter: one sent is refused (400 naming ``/query/<name>``)
as on the intake's and router's APIs, before the API key is looked at."""

from __future__ import annotations

import httpx

from services.metrics.app import create_app
from shared.http.problems import PROBLEM_JSON
from shared.settings import MetricsSettings


async def test_a_query_parameter_is_refused_naming_it() -> None:
    app = create_app(MetricsSettings())  # no lifespan: the refusal needs no state
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://m") as client:
        response = await client.get("/v1/backlog?team=billing")
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == ["/query/team"]


def test_the_api_docs_say_so() -> None:
    responses = create_app(MetricsSettings()).openapi()["paths"]["/v1/backlog"]["get"]["responses"]
    assert "400" in responses and "query" in responses["400"]["description"].lower()
