"""Input that used to pass validation and fail in the database (a 500): U+0000 anywhere in a
request (PostgreSQL stores it in neither text nor JSONB), and aware datetimes whose UTC instant
lies outside datetime's range. Each is a 422 problem naming the parameter or JSON pointer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.integration.router_api.helpers import Router, rule

CALENDAR = {"timezone": "UTC", "weekly_hours": {"mon-fri": "09:00-17:00"}}
NEVER = {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}


def refused_at(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field], response.json()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_nul_anywhere_in_a_request_is_refused_naming_where(router_api: Router) -> None:
    c, editor, admin = router_api.client, router_api.editor, router_api.admin
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/v1/teams", {"json": {"name": unique("nul"), "description": "a\x00b"}}, "/description"),
        ("POST", "/v1/teams", {"json": {"name": unique("nul"), "skills": ["vpn", "a\x00"]}}, "/skills/1"),
        ("POST", "/v1/teams", {"json": {"name": unique("nul"), "k\x00": 1}}, "/k\x00"),
        (
            "PUT",
            f"/v1/sla/policies/{unique('nul')}",
            {"json": {"document": {"applies_when": {**NEVER, "value": "gold\x00"}}}},
            "/document/applies_when/value",
        ),
        (
            "PUT",
            f"/v1/sla/calendars/{unique('nul')}",
            {"json": {"comment": "x\x00", "document": CALENDAR}},
            "/comment",
        ),
        ("PUT", "/v1/sla/policies/a%00b", {"json": {"document": {}}}, "/path/name"),
        ("GET", "/v1/sla/policies/a%00b", {}, "/path/name"),
        ("GET", "/v1/tickets/a%00b", {}, "/path/ticket_key"),
        ("GET", "/v1/audit", {"params": {"entity": "team\x00"}}, "/query/entity"),
        ("POST", "/v1/api-keys", {"json": {"name": "a\x00b"}}, "/name"),
    ]
    for method, url, kwargs, field in cases:
        headers = admin if url.startswith("/v1/api-keys") else editor
        refused_at(await c.request(method, url, headers=headers, **kwargs), field)

    team = await router_api.add_team("nul")
    headers = {**editor, "If-Match": await router_api.rules_etag()}
    added = await c.post("/v1/rules", json=rule("nul", team, "a\x00b"), headers=headers)
    refused_at(added, "/when/value")
    commented = await c.put("/v1/rules", json={"rules": []}, params={"comment": "x\x00"}, headers=headers)
    refused_at(commented, "/query/comment")


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(router_api: Router) -> None:
    name = unique("text")
    body = json.dumps({"name": name, "description": "see \\u0000 in C"})  # an escaped backslash, then u0000
    assert "\\\\u0000" in body
    headers = {**router_api.editor, "Content-Type": "application/json"}
    created = await router_api.client.post("/v1/teams", content=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["description"] == "see \\u0000 in C"


async def test_instants_outside_utc_range_are_refused_naming_the_field(router_api: Router) -> None:
    c, viewer = router_api.client, router_api.viewer
    earliest, latest = "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"
    draft: dict[str, Any] = {"rules": []}
    since = await c.post("/v1/routing/replay", json={"ruleset": draft, "since": earliest}, headers=viewer)
    refused_at(since, "/since")
    until = await c.post("/v1/routing/replay", json={"ruleset": draft, "until": latest}, headers=viewer)
    refused_at(until, "/until")
    refused_at(await c.get("/v1/audit", params={"since": earliest}, headers=viewer), "/query/since")
    ticket = {"external_id": "1", "subject": "vpn"}
    now = await c.post("/v1/routing/simulate", json={"ticket": ticket, "now": latest}, headers=viewer)
    refused_at(now, "/now")
    # The ends of the range themselves, in UTC, are fine.
    for window in (
        {"since": "0001-01-01T00:00:00+00:00", "until": "0001-01-02T00:00:00+00:00"},
        {"since": "9999-12-31T00:00:00+00:00", "until": "9999-12-31T23:59:59+00:00"},
    ):
        edge = await c.post("/v1/routing/replay", json={"ruleset": draft, **window}, headers=viewer)
        assert edge.status_code == 200 and edge.json()["total"] == 0, edge.text


async def test_a_body_that_is_not_json_is_refused_as_such(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    body = json.dumps({"name": unique("form"), "capacity": 3})
    # curl -d sends application/x-www-form-urlencoded: the answer was "Input should be a valid
    # dictionary" at /, which says nothing of the header.
    form = await c.post(
        "/v1/teams", content=body, headers={**editor, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415 and form.headers["content-type"] == "application/problem+json"
    assert form.json()["errors"][0]["field"] == "/header/content-type"
    assert "application/x-www-form-urlencoded" in form.json()["detail"]
    bare = await c.post("/v1/teams", content=body, headers=editor)
    assert bare.status_code == 415 and "none given" in bare.json()["detail"]
    headers = {**editor, "Content-Type": "application/json; charset=utf-8"}
    created = await c.post("/v1/teams", content=body, headers=headers)
    assert created.status_code == 201, created.text


async def test_a_body_that_is_not_valid_json_is_a_400_naming_no_false_field(router_api: Router) -> None:
    """FastAPI reports a JSON syntax error at ("body", <character offset>): answered as a 422 whose
    "field" was that offset as a JSON pointer ("/1", a field the body does not have), where the
    OpenAPI document promises 400 for a body that is not JSON."""
    headers = {**router_api.editor, "Content-Type": "application/json"}
    for broken in (b"{bad", b'{"name": "x",}', b"[1, 2"):
        answer = await router_api.client.post("/v1/teams", content=broken, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["title"] == "Bad request"
        assert problem["detail"].startswith("the body is not valid JSON"), problem
        assert "errors" not in problem
    spec = (await router_api.client.get("/openapi.json")).json()
    assert "400" in spec["paths"]["/v1/teams"]["post"]["responses"]


async def test_a_key_given_twice_in_one_object_is_refused_naming_it(router_api: Router) -> None:
    """JSON parsers keep the last of a repeated key: a rule written with "when" twice lost the
    first condition without a word. Refused as the CLI refuses a repeated YAML key."""
    name = f"twice-{uuid.uuid4().hex[:8]}"
    body = f'{{"name": "{name}", "capacity": 5, "capacity": 50}}'
    headers = {**router_api.editor, "Content-Type": "application/json"}
    refused = await router_api.client.post("/v1/teams", content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "/capacity", "message": "given twice in one object"}]
    nested = '{"rules": [{"id": "a", "name": "a", "when": {"field": "subject", "op": "exists"}, '
    nested += '"when": {"field": "description", "op": "exists"}, "actions": {"set_priority": "P4"}}]}'
    put = await router_api.client.put(
        "/v1/rules", content=nested, headers={**headers, "If-Match": await router_api.rules_etag()}
    )
    assert put.status_code == 422 and put.json()["errors"][0]["field"] == "/rules/0/when", put.text
    assert (await router_api.client.get(f"/v1/teams/{name}", headers=router_api.viewer)).status_code == 404


HOST_ZONES = ["localtime", "posix/Europe/Berlin", "right/UTC"]


async def test_a_time_zone_must_be_an_iana_name_not_a_file_of_this_host(router_api: Router) -> None:
    """ZoneInfo opens any file of the zone directory: "localtime" is the host's own setting (another
    replica's may differ, or lack it, and a calendar that no longer loads drops its policies),
    "right/..." counts leap seconds (27 s off). New configuration takes IANA names only."""
    c, editor = router_api.client, router_api.editor
    for zone in HOST_ZONES:
        team = await c.post(
            "/v1/teams", json={"name": f"tz-{uuid.uuid4().hex[:8]}", "timezone": zone}, headers=editor
        )
        refused_at(team, "/timezone")
        shifts = [{"name": "day", "hours": {"mon-fri": "09:00-17:00"}, "agents": 2}]
        schedule = {"timezone": zone, "tickets_per_agent": 5, "shifts": shifts}
        team = await c.post(
            "/v1/teams", json={"name": f"tz-{uuid.uuid4().hex[:8]}", "schedule": schedule}, headers=editor
        )
        refused_at(team, "/schedule/timezone")
        calendar = {"timezone": zone, "weekly_hours": {"mon-fri": "09:00-17:00"}}
        saved = await c.put(
            f"/v1/sla/calendars/tz-{uuid.uuid4().hex[:8]}", json={"document": calendar}, headers=editor
        )
        refused_at(saved, "/document/timezone")
        live = (await c.get("/v1/rules", headers=router_api.viewer)).json()
        ruleset = {"rules": live["rules"], "timezone": zone}
        if "default_team" in live:
            ruleset["default_team"] = live["default_team"]
        refused_at(await router_api.put_rules(ruleset), "/timezone")
        ruleset = {
            **ruleset,
            "timezone": "UTC",
            "rules": [{**live["rules"][0], "timezone": zone}, *live["rules"][1:]],
        }
        refused_at(await router_api.put_rules(ruleset), "/rules/0/timezone")
    named = await c.post(
        "/v1/teams", json={"name": f"tz-{uuid.uuid4().hex[:8]}", "timezone": "Europe/Berlin"}, headers=editor
    )
    assert named.status_code == 201, named.text


async def test_a_boolean_is_no_number_and_a_string_no_boolean(router_api: Router) -> None:
    """Pydantic's lax mode stored ``"capacity": true`` as 1, a Zendesk group id ``true`` as group 1
    and an SLA target ``true`` as one second, and took ``"yes"`` or ``1`` for a boolean. Each is a
    422 naming the field; a number given as a numeric string is still that number."""
    c, editor, admin, viewer = router_api.client, router_api.editor, router_api.admin, router_api.viewer
    team = await router_api.add_team("bool")
    shift = {"name": "day", "hours": {"mon-fri": "09:00-17:00"}, "agents": 2}
    schedule = {"tickets_per_agent": 5, "shifts": [shift]}
    teams: list[tuple[dict[str, Any], str]] = [
        ({"capacity": True}, "/capacity"),
        ({"capacity": False}, "/capacity"),
        ({"active": "yes"}, "/active"),
        ({"active": 1}, "/active"),
        ({"schedule": {**schedule, "tickets_per_agent": True}}, "/schedule/tickets_per_agent"),
        ({"schedule": {**schedule, "shifts": [{**shift, "agents": True}]}}, "/schedule/shifts/0/agents"),
    ]
    for fields, field in teams:
        refused_at(await c.post("/v1/teams", json={"name": unique("bool"), **fields}, headers=editor), field)
    lax = await c.post("/v1/teams", json={"name": unique("bool"), "capacity": "5"}, headers=editor)
    assert lax.status_code == 201 and lax.json()["capacity"] == 5, lax.text

    pool = {"teams": [team], "strategy": "weighted", "weights": {team: True}}
    rules: list[tuple[dict[str, Any], str]] = [
        (rule(unique("r"), team, enabled="yes"), "/enabled"),
        ({**rule(unique("r"), team), "actions": {"assign_team": team, "stop": "no"}}, "/actions/stop"),
        (
            {**rule(unique("r"), team), "actions": {"assign_pool": pool}},
            f"/actions/assign_pool/weights/{team}",
        ),
        (
            {
                **rule(unique("r"), team),
                "when": {"field": "subject", "op": "contains", "value": "x", "case_sensitive": 1},
            },
            "/when/case_sensitive",
        ),
    ]
    for body, field in rules:
        headers = {**editor, "If-Match": await router_api.rules_etag()}
        refused_at(await c.post("/v1/rules", json=body, headers=headers), field)

    target = {
        "name": unique("wb"),
        "source": "zendesk",
        "connector": "zendesk",
        "url": "https://x.example.com",
    }
    target["secret"] = "s" * 20
    options = {"username": "bot@example.com", "groups": {team: 7}}
    targets: list[tuple[dict[str, Any], str]] = [
        ({"options": {**options, "groups": {team: True}}}, f"/options/groups/{team}"),
        ({"options": {**options, "note": "yes"}}, "/options/note"),
        ({"options": options, "enabled": "yes"}, "/enabled"),
    ]
    for fields, field in targets:
        refused_at(await c.post("/v1/writeback/targets", json={**target, **fields}, headers=admin), field)

    calendar = unique("cal")
    assert (
        await c.put(f"/v1/sla/calendars/{calendar}", json={"document": CALENDAR}, headers=editor)
    ).status_code == 201
    policy = {"calendar": calendar, "applies_when": NEVER, "targets": {"P1": {"resolution": 60}}}
    policies: list[tuple[dict[str, Any], str]] = [
        ({**policy, "targets": {"P1": {"resolution": True}}}, "/document/targets/P1/resolution"),
        ({**policy, "warning_share": True}, "/document/warning_share"),
        ({**policy, "rank": True}, "/document/rank"),
    ]
    for document, field in policies:
        refused_at(
            await c.put(f"/v1/sla/policies/{unique('pol')}", json={"document": document}, headers=editor),
            field,
        )

    ticket = {"external_id": "1", "subject": "vpn"}
    simulated = await c.post(
        "/v1/routing/simulate", json={"ticket": ticket, "category_confidence": True}, headers=viewer
    )
    refused_at(simulated, "/category_confidence")
    replayed = await c.post(
        "/v1/routing/replay", json={"ruleset": {"rules": []}, "last": True}, headers=viewer
    )
    refused_at(replayed, "/last")
    refused_at(await c.post("/v1/classifiers/predict", json={"version": True}, headers=viewer), "/version")
