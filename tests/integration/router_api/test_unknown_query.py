"""A query parameter an operation does not declare is refused (400 naming ``/query/<name>``):
``GET /v1/audit?entitty=team`` answered every entry, silently unfiltered. The health and metrics
endpoints take whatever a probe or scraper adds."""

from __future__ import annotations

import httpx

from tests.integration.router_api.helpers import Router


def refused_at(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field], response.json()


async def test_an_undeclared_query_parameter_is_refused_naming_it(router_api: Router) -> None:
    c, editor, admin = router_api.client, router_api.editor, router_api.admin
    typo = await c.get("/v1/audit", params={"entitty": "team"}, headers=editor)
    refused_at(typo, "/query/entitty")
    detail = typo.json()["detail"]
    assert "entitty" in detail and "entity" in detail and "before_id" in detail  # what it takes
    refused_at(await c.get("/v1/teams", params={"actve": "true"}, headers=editor), "/query/actve")
    refused_at(await c.get("/v1/rules", params={"x": "1"}, headers=editor), "/query/x")
    refused_at(await c.get("/v1/api-keys", params={"x": ""}, headers=admin), "/query/x")
    refused_at(
        await c.get("/v1/sla/policies/gold/versions", params={"befor": "3"}, headers=editor), "/query/befor"
    )
    refused_at(
        await c.get("/v1/writeback/deliveries", params={"state": "failed"}, headers=admin), "/query/state"
    )
    refused_at(await c.get("/v1/classifiers", params={"kind": "team"}, headers=editor), "/query/kind")
    refused_at(await c.get("/v1/tickets/none", params={"decision": "5"}, headers=editor), "/query/decision")
    # A write too: the rule set's comment is a query parameter, and a misspelt one was lost.
    refused_at(
        await c.put("/v1/rules", params={"coment": "why"}, json={"rules": []}, headers=editor),
        "/query/coment",
    )

    # Declared parameters pass, and so do those the dependencies declare.
    assert (
        await c.get("/v1/audit", params={"entity": "team", "limit": 1}, headers=editor)
    ).status_code == 200
    assert (await c.get("/v1/teams", params={"active": "true"}, headers=editor)).status_code == 200
    # Probes and scrapers add their own query strings.
    assert (await c.get("/healthz", params={"probe": "1"})).status_code == 200
    assert (await c.get("/readyz", params={"probe": "1"})).status_code == 200
    assert (await c.get("/metrics", params={"probe": "1"})).status_code == 200
