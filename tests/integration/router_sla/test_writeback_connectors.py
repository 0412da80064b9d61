"""Write-back connectors end to end: a routing decision queued, then sent by the sender to a real
local HTTP server that answers as the helpdesks' APIs do; the API that configures them; and the
helpdesk's echo of the group we wrote, read back as our team."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.models import RouterTicket
from services.router.routing.handler import HandlerOptions, RoutingHandler
from services.router.writeback.endpoints import router as writeback_api
from services.router.writeback.groups import GroupDirectory
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.auth import Role
from shared.events import EventType
from shared.http.problems import PROBLEM_JSON
from shared.kafka.embedded import free_port
from tests.integration.router_sla.helpers import Clock, api_client, event, new_id, producer_for, route, utc

TOKEN = "zd-api-token-0123456789"


class Helpdesk:
    """Zendesk's Update Ticket and GitHub's Add Labels, as a real server on 127.0.0.1. Ticket 429
    is rate limited once (429 with Retry-After), as Zendesk answers past its quota."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[str, str, dict[str, str], dict[str, object]]] = []

    async def zendesk(self, request: Request) -> Response:
        self.seen.append(("PUT", request.url.path, dict(request.headers), orjson.loads(await request.body())))
        expected = "Basic " + base64.b64encode(f"bot@acme.com/token:{TOKEN}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "Couldn't authenticate you"}, status_code=401)
        if request.path_params["ticket"] == "429" and len(self.seen) == 1:
            return JSONResponse(
                {"error": "APIRateLimitExceeded"}, status_code=429, headers={"Retry-After": "90"}
            )
        return JSONResponse({"ticket": {"id": int(request.path_params["ticket"])}})

    async def github(self, request: Request) -> Response:
        self.seen.append(
            ("POST", request.url.path, dict(request.headers), orjson.loads(await request.body()))
        )
        return JSONResponse([{"name": name} for name in orjson.loads(await request.body())["labels"]])

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v2/tickets/{ticket}.json", self.zendesk, methods=["PUT"]),
                Route("/repos/{owner}/{repo}/issues/{number}/labels", self.github, methods=["POST"]),
            ]
        )


@pytest.fixture
async def helpdesk() -> AsyncIterator[Helpdesk]:
    desk = Helpdesk()
    server = uvicorn.Server(uvicorn.Config(desk.app(), host="127.0.0.1", port=desk.port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield desk
    server.should_exit = True
    await task


def zendesk_target(source: str, port: int, **changes: object) -> WritebackTarget:
    now = utc(2026, 12, 7, 9, 0)
    fields: dict[str, object] = {
        "name": f"zendesk-{source}",
        "source": source,
        "connector": "zendesk",
        "url": f"http://127.0.0.1:{port}",
        "secret": TOKEN,
        "options": {"username": "bot@acme.com", "groups": {"access": 360001, "billing": 360002}},
        "enabled": True,
        "event_kinds": [],
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        **changes,
    }
    return WritebackTarget(**fields)


async def route_one(sessions, settings_kwargs, source: str, external_id: str, clock: Clock, **options) -> str:
    """Route one new ticket of ``source`` (to ``access``, helpers.route); returns its key."""
    async with producer_for(settings_kwargs) as (producer, topic):
        handler = RoutingHandler(
            sessions, producer, topic, lambda: route, clock, HandlerOptions(writeback=True, **options)
        )
        consumed = event(external_id, clock.now)
        consumed.envelope.source = source
        consumed.envelope.ticket_key = f"{source}:{external_id}"
        await handler([consumed])
    return consumed.envelope.ticket_key


async def deliveries(sessions, ticket_key: str) -> list[WritebackDelivery]:
    async with sessions() as session:
        query = select(WritebackDelivery).where(WritebackDelivery.ticket_key == ticket_key)
        return list((await session.scalars(query.order_by(WritebackDelivery.id))).all())


async def test_zendesk_gets_the_group_priority_and_why_and_a_429_is_retried_when_asked(
    sessions, settings_kwargs, helpdesk
):
    source = f"zd-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    async with sessions() as session, session.begin():
        session.add(zendesk_target(source, helpdesk.port))
    key = await route_one(sessions, settings_kwargs, source, "429", clock)
    async with httpx.AsyncClient() as client:
        sender = WritebackSender(sessions, client, SenderConfig(backoff_base_s=2), clock)
        assert await sender.run_once() == 1  # 429, Retry-After: 90
        [queued] = await deliveries(sessions, key)
        assert queued.status == "pending" and "HTTP 429 from PUT" in (queued.last_error or "")
        assert queued.next_attempt_at == clock.now + timedelta(seconds=90)  # not the 2 s backoff
        clock.now += timedelta(seconds=89)
        assert await sender.run_once() == 0
        clock.now += timedelta(seconds=1)
        assert await sender.run_once() == 1
    [delivered] = await deliveries(sessions, key)
    assert (delivered.status, delivered.attempts) == ("delivered", 2)
    method, path, headers, body = helpdesk.seen[-1]
    assert (method, path) == ("PUT", "/api/v2/tickets/429.json")
    assert headers["content-type"] == "application/json"
    ticket = body["ticket"]
    assert isinstance(ticket, dict)
    assert ticket["group_id"] == 360001 and ticket["priority"] in ("urgent", "high", "normal", "low")
    assert ticket["comment"]["public"] is False and ticket["comment"]["body"].startswith(
        "Routed to access at "
    )


async def test_a_ticket_the_connector_cannot_address_fails_at_once_and_a_fixed_target_applies_to_the_queue(
    sessions, settings_kwargs, helpdesk
):
    source = f"gh-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    async with sessions() as session, session.begin():
        session.add(
            zendesk_target(source, helpdesk.port, name=f"github-{source}", connector="github", options={})
        )
    bad = await route_one(sessions, settings_kwargs, source, "17", clock)  # not owner/repo#number
    good = await route_one(sessions, settings_kwargs, source, "acme/widgets#17", clock)
    async with httpx.AsyncClient() as client:
        sender = WritebackSender(sessions, client, SenderConfig(max_attempts=8), clock)
        assert await sender.run_once() == 2
    [failed] = await deliveries(sessions, bad)
    assert (failed.status, failed.attempts) == ("failed", 1)  # retrying cannot help
    assert "cannot be sent to this github target" in (failed.last_error or "")
    [sent] = await deliveries(sessions, good)
    assert sent.status == "delivered"
    assert [(m, p) for m, p, _, _ in helpdesk.seen] == [("POST", "/repos/acme/widgets/issues/17/labels")]
    _, _, headers, body = helpdesk.seen[0]
    assert headers["authorization"] == f"Bearer {TOKEN}" and headers["x-github-api-version"] == "2022-11-28"
    assert body["labels"][0] == "team:access"

    # The target's settings are read at send time: a queued delivery goes out as the target is now.
    source = f"zd-{new_id()[:8]}"
    async with sessions() as session, session.begin():
        session.add(zendesk_target(source, helpdesk.port, options={"username": "someone@else.com"}))
    key = await route_one(sessions, settings_kwargs, source, "5", clock)
    async with httpx.AsyncClient() as client:
        sender = WritebackSender(sessions, client, SenderConfig(backoff_base_s=1), clock)
        assert await sender.run_once() == 1
        [queued] = await deliveries(sessions, key)
        assert "HTTP 401" in (queued.last_error or "") and TOKEN not in (queued.last_error or "")
        async with sessions() as session, session.begin():
            row = await session.scalar(select(WritebackTarget).where(WritebackTarget.source == source))
            assert row is not None
            row.options = {"username": "bot@acme.com", "note": False}
        clock.now += timedelta(seconds=1)
        assert await sender.run_once() == 1
    [delivered] = await deliveries(sessions, key)
    assert delivered.status == "delivered"
    assert helpdesk.seen[-1][3] == {"ticket": {"priority": helpdesk.seen[-1][3]["ticket"]["priority"]}}


async def test_the_helpdesks_echo_of_our_group_is_read_as_our_team(sessions, settings_kwargs, helpdesk):
    source = f"zd-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    async with sessions() as session, session.begin():
        session.add(zendesk_target(source, helpdesk.port))
    directory = GroupDirectory(sessions)
    await directory.refresh()
    key = await route_one(sessions, settings_kwargs, source, "88", clock, team_of_group=directory.team_of)

    async def reassigned(group: str) -> str | None:
        clock.now += timedelta(minutes=1)
        async with producer_for(settings_kwargs) as (producer, topic):
            handler = RoutingHandler(
                sessions,
                producer,
                topic,
                lambda: route,
                clock,
                HandlerOptions(writeback=True, team_of_group=directory.team_of),
            )
            echo = event(
                "88", clock.now, kind=EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group=group
            )
            echo.envelope.source = source
            echo.envelope.ticket_key = key
            await handler([echo])
        async with sessions() as session:
            ticket = await session.get(RouterTicket, key)
            assert ticket is not None
            return ticket.team

    assert await reassigned("360001") == "access"  # our own write-back, echoed: nothing moves
    assert [d.kind for d in await deliveries(sessions, key)] == ["assignment"]  # and no write-back loop
    assert await reassigned("360002") == "billing"  # an agent moved it to billing's group
    assert await reassigned("999") == "999"  # a group no target maps stays as the helpdesk names it


async def test_the_api_checks_a_connectors_options_and_shows_them(sessions):
    name = f"zendesk-{new_id()[:8]}"
    body = {
        "name": name,
        "source": "zendesk",
        "connector": "zendesk",
        "url": "https://acme.zendesk.com",
        "secret": TOKEN,
        "options": {"groups": {"billing": "Billing"}},
    }
    async with await api_client(sessions, writeback_api, Role.ADMIN, "connector admin") as client:
        refused = await client.post("/v1/writeback/targets", json=body)
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM_JSON
        [error] = refused.json()["errors"]
        assert error["field"] == "/options"
        assert "groups.billing: Input should be a valid integer" in error["message"]
        assert "username: Field required" in error["message"]
        nul = await client.post("/v1/writeback/targets", json={**body, "secret": "x\u0000" * 10})
        assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "/secret"
        body["options"] = {"username": "bot@acme.com", "groups": {"billing": 360002}}
        created = await client.post("/v1/writeback/targets", json=body)
        assert created.status_code == 201, created.text
        shown = created.json()
        assert shown["connector"] == "zendesk" and shown["options"] == body["options"]
        assert "secret" not in shown and TOKEN not in created.text
        unknown = await client.post(
            "/v1/writeback/targets", json={**body, "name": name + "-2", "connector": "otrs"}
        )
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "/connector"
