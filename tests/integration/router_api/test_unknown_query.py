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


async def test_a_parameter_given_twice_is_refused_naming_it(router_api: Router) -> None:
    """``?limit=5&limit=10`` took one of them silently, and ``?entity=team&entity=ruleset`` answered
    the entries of one entity only. Every query parameter of these APIs is single-valued."""
    c, editor, admin = router_api.client, router_api.editor, router_api.admin
    refused_at(await c.get("/v1/audit?limit=5&limit=10", headers=editor), "/query/limit")
    refused_at(await c.get("/v1/audit?entity=team&entity=ruleset", headers=editor), "/query/entity")
    refused_at(await c.get("/v1/rules/versions?before=3&before=9", headers=editor), "/query/before")
    refused_at(await c.get("/v1/teams?active=true&active=false", headers=editor), "/query/active")
    refused_at(await c.get("/v1/writeback/deliveries?limit=1&limit=1", headers=admin), "/query/limit")
    refused_at(
        await c.put("/v1/rules?comment=a&comment=b", json={"rules": []}, headers=editor), "/query/comment"
    )
    assert (await c.get("/v1/audit?limit=5", headers=editor)).status_code == 200
    assert (await c.get("/metrics?name[]=a&name[]=b")).status_code == 200  # a scraper's list
