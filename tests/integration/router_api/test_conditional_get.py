"""Conditional GET on the router's tagged resources: If-None-Match with the current ETag -> 304."""

from __future__ import annotations

import uuid

from tests.integration.router_api.helpers import Router


async def assert_conditional(router: Router, path: str) -> None:
    c = router.client
    first = await c.get(path, headers=router.viewer)
    assert first.status_code == 200, first.text
    tag = first.headers["ETag"]
    same = await c.get(path, headers={**router.viewer, "If-None-Match": tag})
    assert same.status_code == 304, (path, same.text)
    assert same.content == b"" and same.headers["ETag"] == tag
    strong = tag.removeprefix("W/")  # weak comparison
    assert (await c.get(path, headers={**router.viewer, "If-None-Match": strong})).status_code == 304
    changed = await c.get(path, headers={**router.viewer, "If-None-Match": 'W/"not-this-1"'})
    assert changed.status_code == 200 and changed.json() == first.json()
    # The key is checked first: no 304 tells an anonymous client a resource exists.
    assert (await c.get(path, headers={"If-None-Match": tag})).status_code == 401


async def test_tagged_gets_answer_not_modified(router_api: Router) -> None:
    team = await router_api.add_team()
    policy = f"pol-{uuid.uuid4().hex[:8]}"
    never = {"applies_when": {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}}
    put = await router_api.client.put(
        f"/v1/sla/policies/{policy}", json={"document": never}, headers=router_api.editor
    )
    assert put.status_code == 201, put.text
    for path in (f"/v1/teams/{team}", "/v1/rules", f"/v1/sla/policies/{policy}"):
        await assert_conditional(router_api, path)


async def test_head_answers_as_get_without_the_body(router_api: Router) -> None:
    """RFC 9110 9.3.2: HEAD is GET without the content (``curl -I`` for an ETag), not a 405."""
    c, path = router_api.client, f"/v1/teams/{await router_api.add_team()}"
    got = await c.get(path, headers=router_api.viewer)
    head = await c.head(path, headers=router_api.viewer)
    assert head.status_code == 200 and head.content == b"", head.text
    assert head.headers["ETag"] == got.headers["ETag"]
    assert head.headers["content-length"] == str(len(got.content))
    tagged = await c.head(path, headers={**router_api.viewer, "If-None-Match": got.headers["ETag"]})
    assert tagged.status_code == 304 and tagged.content == b""
    anonymous = await c.head(path)
    assert anonymous.status_code == 401 and anonymous.content == b""
    missing = await c.head("/v1/teams/no-such-team-x", headers=router_api.viewer)
    assert missing.status_code == 404 and missing.content == b""
    post_only = await c.head("/v1/routing/simulate", headers=router_api.viewer)
    assert post_only.status_code == 405 and post_only.headers["allow"] == "POST"
