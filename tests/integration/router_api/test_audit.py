"""``GET /v1/audit``: keyset pages followed by the Link header, stable while entries are added;
bad cursors are problem+json naming the parameter."""

from __future__ import annotations

import re
import uuid
from typing import Any

from shared.auth import Role, create_api_key
from shared.db.audit import record
from tests.integration.router_api.helpers import Router

PROBLEM = "application/problem+json"
MAX_ID = 2**63 - 1  # a BIGINT


async def _record(router_api: Router, entity_id: str, count: int, action: str) -> None:
    async with router_api.app.state.sessions() as session, session.begin():
        for n in range(count):
            record(session, "test", action, "paging", entity_id, {"n": n})


def _next(link: str | None) -> str | None:
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


async def test_pages_follow_the_link_and_stay_stable_while_entries_are_added(router_api: Router) -> None:
    """Only the newest 1,000 entries could be read: nothing paged further. Each full page now
    links to the next, older one; entries added meanwhile shift nothing."""
    entity_id = f"paged-{uuid.uuid4().hex[:8]}"
    await _record(router_api, entity_id, 25, "old")
    url: str | None = f"/v1/audit?entity=paging&entity_id={entity_id}&limit=10"
    seen: list[dict[str, Any]] = []
    pages = 0
    while url is not None:
        page = await router_api.client.get(url, headers=router_api.viewer)
        assert page.status_code == 200, page.text
        seen += page.json()
        pages += 1
        await _record(router_api, entity_id, 3, "new")  # newer than everything listed: not on later pages
        url = _next(page.headers.get("link"))
        assert pages <= 4
    assert [e["detail"]["n"] for e in seen] == list(range(24, -1, -1))
    assert {e["action"] for e in seen} == {"old"}
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 25
    assert pages == 3  # 10, 10, 5: the short page has no link


async def test_bad_cursors_name_the_parameter(router_api: Router) -> None:
    c = router_api.client
    for bad in ("abc", "0", str(MAX_ID + 1)):
        answer = await c.get("/v1/audit", params={"before_id": bad}, headers=router_api.viewer)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, (bad, answer.text)
        assert answer.json()["errors"][0]["field"] == "/query/before_id"
    fine = await c.get(
        "/v1/audit", params={"before_id": str(MAX_ID), "limit": "1"}, headers=router_api.viewer
    )
    assert fine.status_code == 200 and len(fine.json()) == 1
    spec = (await c.get("/openapi.json")).json()["paths"]["/v1/audit"]["get"]
    assert "before_id" in {p["name"] for p in spec["parameters"]}
    assert "Link" in spec["responses"]["200"]["headers"]


async def test_entries_name_the_api_key_by_id_as_well_as_by_its_name(router_api: Router) -> None:
    """The actor was the key's name only, and names are not unique: two keys both called
    "deploy bot" could not be told apart in the audit. Each entry made over the API now carries
    the key's id too; one made without a key (ticketctl on the database) has none."""
    keys = []
    async with router_api.app.state.sessions() as session, session.begin():
        for _ in range(2):
            row, plain = await create_api_key(session, "deploy bot", Role.EDITOR)
            keys.append((row.id, {"Authorization": f"Bearer {plain}"}))
    teams = []
    for _, headers in keys:
        name = f"audited-{uuid.uuid4().hex[:8]}"
        created = await router_api.client.post("/v1/teams", json={"name": name}, headers=headers)
        assert created.status_code == 201, created.text
        teams.append(name)
    cli_entity = f"cli-{uuid.uuid4().hex[:8]}"
    await _record(router_api, cli_entity, 1, "by the cli")

    listed = await router_api.client.get("/v1/audit", params={"entity": "team"}, headers=router_api.viewer)
    assert listed.status_code == 200, listed.text
    by_team = {e["entity_id"]: e for e in listed.json() if e["entity_id"] in teams}
    assert [(by_team[t]["actor"], by_team[t]["actor_key_id"]) for t in teams] == [
        ("deploy bot", key_id) for key_id, _ in keys
    ]
    by_cli = {"entity_id": cli_entity}
    cli = await router_api.client.get("/v1/audit", params=by_cli, headers=router_api.viewer)
    assert [(e["actor"], e["actor_key_id"]) for e in cli.json()] == [("test", None)]
