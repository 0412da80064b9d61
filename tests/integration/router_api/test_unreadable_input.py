"""Admin input that must never reach the database as something it cannot read back, nor a request
that can cost a 500: a lone surrogate in a rule or policy, a group id past 64 bits, a body nested a
thousand levels; concurrent target creations serialised; a ticket's decision history bounded."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import delete, insert, text

from services.router.models import RouterTicket, RoutingDecision
from services.router.writeback import service as writeback
from services.router.writeback.models import WritebackTarget
from services.router.writeback.schemas import TargetIn
from shared.db.storable import SURROGATE_MESSAGE
from tests.integration.router_api.helpers import Router

LONE = "\\ud800"  # the JSON escape of a lone high surrogate


def _client(router_api: Router) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=router_api.app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://router")


def _zendesk_target(name: str, source: str, team: str, group: int | str) -> dict[str, object]:
    return {
        "name": name,
        "source": source,
        "connector": "zendesk",
        "url": "https://acme.zendesk.com",
        "secret": "0123456789abcdef0123",
        "options": {"username": "bot@acme.com", "groups": {team: group}},
    }


async def test_a_lone_surrogate_in_a_rule_is_refused_naming_the_field(router_api: Router) -> None:
    team = await router_api.add_team("sur")
    rule_id = "sur-" + uuid.uuid4().hex[:8]
    rule = {"id": rule_id, "name": "x", "when": {"field": "subject", "op": "contains", "value": "a@"}}
    body = json.dumps({**rule, "actions": {"assign_team": team}}).replace("a@", "a" + LONE)
    headers = {
        **router_api.editor,
        "Content-Type": "application/json",
        "If-Match": await router_api.rules_etag(),
    }
    async with _client(router_api) as client:
        try:
            added = await client.post("/v1/rules", content=body, headers=headers)
            assert added.status_code == 422, added.text
            assert added.json()["errors"][0]["field"] == "/when/value"
            assert (await client.get("/v1/rules", headers=router_api.viewer)).status_code == 200
        finally:  # were it stored, the rules could not be read again
            async with router_api.app.state.sessions() as session, session.begin():
                await session.execute(
                    text("DELETE FROM ruleset_versions WHERE CAST(document AS TEXT) LIKE :p"),
                    {"p": f"%{rule_id}%"},
                )


async def test_a_lone_surrogate_in_an_sla_policy_is_refused(router_api: Router) -> None:
    name = "sur-" + uuid.uuid4().hex[:8]
    condition = {"field": "customer_tier", "op": "equals", "value": "g@"}
    body = json.dumps({"document": {"applies_when": condition}}).replace("g@", "g" + LONE)
    async with _client(router_api) as client:
        try:
            saved = await client.put(
                f"/v1/sla/policies/{name}",
                content=body,
                headers={**router_api.editor, "Content-Type": "application/json"},
            )
            assert saved.status_code == 422, saved.text
            [error] = saved.json()["errors"]  # the same document without the surrogate is saved
            assert error["field"] == "/document/applies_when/value" and "surrogate" in error["message"]
            assert (await client.get("/v1/sla/policies", headers=router_api.viewer)).status_code == 200
        finally:
            async with router_api.app.state.sessions() as session, session.begin():
                await session.execute(
                    text("DELETE FROM sla_config_versions WHERE name LIKE :p"), {"p": f"{name}%"}
                )


async def test_a_lone_surrogate_in_a_key_is_refused_naming_it_escaped(router_api: Router) -> None:
    """The key itself cannot be written in the UTF-8 answer: the pointer spells its surrogate as
    the six characters of its escape (an answer holding it raw failed to render: a 500)."""
    body = json.dumps({"name": "x", "a": {"k@": 1}}).replace("k@", "k" + LONE)
    headers = {**router_api.editor, "Content-Type": "application/json"}
    async with _client(router_api) as client:
        refused = await client.post("/v1/teams", content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error == {"field": "/a/k\\ud800", "message": SURROGATE_MESSAGE}


async def test_a_group_id_past_64_bits_is_refused(router_api: Router) -> None:
    team = await router_api.add_team("wb")
    name = "wb-" + uuid.uuid4().hex[:8]
    body = json.dumps(_zendesk_target(name, f"zendesk-{name}", team, 7)).replace(
        '": 7}', '": 1' + "0" * 400 + "}"
    )
    async with _client(router_api) as client:
        try:
            created = await client.post(
                "/v1/writeback/targets",
                content=body,
                headers={**router_api.admin, "Content-Type": "application/json"},
            )
            assert created.status_code == 422, created.text
            [error] = created.json()["errors"]  # the same target with group 7 is created
            assert error["field"] == "/options" and "must fit in 64 bits" in error["message"]
            assert (await client.get("/v1/writeback/targets", headers=router_api.viewer)).status_code == 200
        finally:
            async with router_api.app.state.sessions() as session, session.begin():
                await session.execute(text("DELETE FROM writeback_targets WHERE name = :n"), {"n": name})


async def test_a_body_nested_a_thousand_levels_is_no_500_even_without_a_key(router_api: Router) -> None:
    body = "[" * 1000 + '"\\u0000"' + "]" * 1000
    headers = {"Content-Type": "application/json"}  # no Authorization at all
    async with _client(router_api) as client:
        for method, path in (("GET", "/v1/teams"), ("GET", "/v1/audit"), ("DELETE", "/v1/teams/x")):
            answer = await client.request(method, path, content=body, headers=headers)
            assert answer.status_code < 500, (method, path, answer.status_code)


async def test_two_targets_created_at_once_cannot_map_one_group_to_two_teams(router_api: Router) -> None:
    one, two = await router_api.add_team("wa"), await router_api.add_team("wb")
    source, suffix = f"zendesk-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    first = _zendesk_target(f"a-{suffix}", source, one, 777)
    second = _zendesk_target(f"b-{suffix}", source, two, 777)
    sessions = router_api.app.state.sessions
    try:
        async with sessions() as session, session.begin():
            await writeback.create_target(session, TargetIn.model_validate(first), "tests")
            request = asyncio.create_task(
                router_api.client.post("/v1/writeback/targets", json=second, headers=router_api.admin)
            )
            await asyncio.wait({request}, timeout=0.5)  # waits for the lock (or SQLite's write lock)
        answer = await asyncio.wait_for(request, timeout=10)
        assert answer.status_code == 409, answer.text
    finally:
        async with sessions() as session, session.begin():
            await session.execute(delete(WritebackTarget).where(WritebackTarget.source == source))


async def test_a_tickets_view_lists_its_newest_decisions_bounded(router_api: Router) -> None:
    key = f"api:bounded-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    async with router_api.app.state.sessions() as session, session.begin():
        session.add(
            RouterTicket(
                ticket_key=key,
                source="api",
                external_id="1",
                status="open",
                priority="P3",
                created_at=now,
                snapshot={"subject": "x"},
            )
        )
        await session.flush()
        await session.execute(
            insert(RoutingDecision),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "caused_by": str(uuid.uuid4()),
                    "ticket_key": key,
                    "kind": "ticket.state_changed",
                    "status": "open",
                    "priority": "P3",
                    "reasons": [f"decision {index}"],
                    "decided_at": now,
                }
                for index in range(1_200)
            ],
        )
    try:
        default = (await router_api.client.get(f"/v1/tickets/{key}", headers=router_api.viewer)).json()
        assert len(default["decisions"]) == 200 and default["decisions_omitted"]
        assert default["decisions"][-1]["reasons"] == ["decision 1199"]  # the newest last
        few = await router_api.client.get(
            f"/v1/tickets/{key}", params={"decisions": 3}, headers=router_api.viewer
        )
        assert [d["reasons"][0] for d in few.json()["decisions"]] == [
            f"decision {i}" for i in (1197, 1198, 1199)
        ]
        too_many = await router_api.client.get(
            f"/v1/tickets/{key}", params={"decisions": 5000}, headers=router_api.viewer
        )
        assert too_many.status_code == 422
    finally:
        async with router_api.app.state.sessions() as session, session.begin():
            await session.execute(delete(RoutingDecision).where(RoutingDecision.ticket_key == key))
            await session.execute(delete(RouterTicket).where(RouterTicket.ticket_key == key))


async def test_a_body_over_the_cap_is_refused_before_the_key_check(router_api: Router) -> None:
    """FastAPI parses a body before the key check: uncapped, an anonymous client made the router
    buffer and parse any amount of JSON."""
    body = b'{"name": "' + b"x" * (router_api.settings.router_max_body_bytes + 1) + b'"}'
    async with _client(router_api) as client:
        answer = await client.post("/v1/teams", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text  # not 401 after parsing it, nor a parse error
