"""Write-back connectors end to end: a routing decision queued, then sent by the sender to a real
local HTTP server that answers as the helpdesks' APIs do; the API that configures them; and the
helpdesk's echo of the group we wrote, read back as our team."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.models import RouterTicket
from services.router.routing.handler import HandlerOptions, RoutingHandler
from services.router.writeback.connectors import Target
from services.router.writeback.endpoints import router as writeback_api
from services.router.writeback.groups import GroupDirectory
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.queue import WritebackQueue
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.auth import Role
from shared.events import (
    EventType,
    Priority,
    RoutingPayload,
    TicketState,
    TicketStatus,
    routing_event,
    utc_now,
)
from shared.http.problems import PROBLEM_JSON
from shared.kafka.embedded import free_port
from tests.integration.router_sla.helpers import (
    Clock,
    add_teams,
    api_client,
    event,
    new_id,
    producer_for,
    route,
    serving,
    utc,
)

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

    async def intercom(self, request: Request) -> Response:
        """Parts and replies of a conversation; the first reply is refused (503, as under load)."""
        body = orjson.loads(await request.body())
        self.seen.append(("POST", request.url.path, dict(request.headers), body))
        if request.url.path.endswith("/reply") and sum(p.endswith("/reply") for _, p, _, _ in self.seen) == 1:
            return JSONResponse({"type": "error.list"}, status_code=503)
        return JSONResponse({"type": "conversation", "id": request.path_params["conversation"]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v2/tickets/{ticket}.json", self.zendesk, methods=["PUT"]),
                Route("/repos/{owner}/{repo}/issues/{number}/labels", self.github, methods=["POST"]),
                Route("/conversations/{conversation}/{part}", self.intercom, methods=["POST"]),
            ]
        )


@pytest.fixture
async def helpdesk() -> AsyncIterator[Helpdesk]:
    desk = Helpdesk()
    async with serving(desk.app(), desk.port):
        yield desk


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
    assert (delivered.status, delivered.attempts) == ("delivered", 1)  # the 429 used no attempt
    method, path, headers, body = helpdesk.seen[-1]
    assert (method, path) == ("PUT", "/api/v2/tickets/429.json")
    assert headers["content-type"] == "application/json"
    ticket = body["ticket"]
    assert isinstance(ticket, dict)
    assert ticket["group_id"] == 360001 and ticket["priority"] in ("urgent", "high", "normal", "low")
    assert ticket["comment"]["public"] is False and ticket["comment"]["body"].startswith(
        "Routed to access at "
    )


async def test_a_retry_sends_only_the_requests_an_earlier_attempt_did_not_get_through(
    sessions, settings_kwargs, helpdesk
):
    # Intercom: the assignment is a new part of the conversation each time it is sent.
    source = f"ic-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    options = {"admin_id": "814860", "groups": {"access": "5017691"}}
    async with sessions() as session, session.begin():
        session.add(zendesk_target(source, helpdesk.port, connector="intercom", options=options))
    key = await route_one(sessions, settings_kwargs, source, "215467", clock)
    async with httpx.AsyncClient() as client:
        sender = WritebackSender(sessions, client, SenderConfig(backoff_base_s=1), clock)
        assert await sender.run_once() == 1  # assigned; the note refused
        [queued] = await deliveries(sessions, key)
        assert (queued.status, queued.requests_sent) == ("pending", 1)
        assert "HTTP 503 from POST" in (queued.last_error or "")
        clock.now += timedelta(seconds=1)
        assert await sender.run_once() == 1
    [delivered] = await deliveries(sessions, key)
    assert (delivered.status, delivered.attempts, delivered.requests_sent) == ("delivered", 2, 2)
    paths = [path for _, path, _, _ in helpdesk.seen]
    assert paths == [f"/conversations/215467/{p}" for p in ("parts", "reply", "reply")]
    assert helpdesk.seen[0][3]["assignee_id"] == "5017691"


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
    async with sessions() as session, session.begin():
        for row in (
            await session.scalars(select(WritebackDelivery).where(WritebackDelivery.ticket_key == key))
        ).all():
            row.status = "failed"  # not for the senders of other tests


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
    async with sessions() as session, session.begin():
        await add_teams(session, "billing", "access")
    async with await api_client(sessions, writeback_api, Role.ADMIN, "connector admin") as client:
        refused = await client.post("/v1/writeback/targets", json=body)
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM_JSON
        # One error per option, each at its place.
        errors = {e["field"]: e["message"] for e in refused.json()["errors"]}
        assert errors.keys() == {"/options/username", "/options/groups/billing"}, errors
        assert errors["/options/username"] == "Field required"
        assert errors["/options/groups/billing"].startswith("Input should be a valid integer")
        clash = {**body, "connector": "freshdesk", "options": {"groups": {"billing": 1, "access": 1}}}
        [across] = (await client.post("/v1/writeback/targets", json=clash)).json()["errors"]
        assert (
            across["field"] == "/options"
            and "'billing' and 'access' name the same group 1" in across["message"]
        )
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


def queued(
    target_id: int, ticket_key: str, kind: str, priority: str, at, **fields: object
) -> WritebackDelivery:
    event_id = str(uuid.uuid4())
    document = {
        "event_id": event_id,
        "kind": kind,
        "ticket_key": ticket_key,
        "external_id": ticket_key.split(":", 1)[1],
        "team": "access",
        "priority": priority,
        "reasons": ["test"],
        **fields,
    }
    return WritebackDelivery(
        target_id=target_id,
        event_id=event_id,
        kind=kind,
        ticket_key=ticket_key,
        body=orjson.dumps(document).decode(),
        status="pending",
        attempts=0,
        next_attempt_at=at,
        created_at=at,
    )


async def test_a_tickets_deliveries_go_in_order_and_a_disabled_targets_wait(sessions, helpdesk):
    source = f"zd-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    async with sessions() as session, session.begin():
        target = zendesk_target(source, helpdesk.port, options={"username": "bot@acme.com", "note": False})
        paused = zendesk_target(source, helpdesk.port, name=f"paused-{source}", enabled=False)
        session.add_all([target, paused])
        await session.flush()
        key = f"{source}:429"  # the helpdesk answers its first request with 429, Retry-After 90
        session.add(queued(target.id, key, "assignment", "P3", clock.now))
        session.add(queued(target.id, key, "escalation", "P1", clock.now + timedelta(seconds=1)))
        session.add(queued(paused.id, f"{source}:7", "assignment", "P3", clock.now))
        paused_id = paused.id
    async with httpx.AsyncClient() as client:
        sender = WritebackSender(sessions, client, SenderConfig(), clock)
        clock.now += timedelta(seconds=1)
        assert await sender.run_once() == 1  # the assignment (429); the escalation waits behind it
        assert await sender.run_once() == 0
        clock.now += timedelta(seconds=90)
        assert await sender.run_once() == 1  # the assignment again
        assert await sender.run_once() == 1  # then the escalation
        assert await sender.run_once() == 0  # and never the disabled target's
    assert [body["ticket"]["priority"] for _, _, _, body in helpdesk.seen] == ["normal", "normal", "urgent"]
    assert {d.status for d in await deliveries(sessions, key)} == {"delivered"}
    [waiting] = await deliveries(sessions, f"{source}:7")
    assert (waiting.status, waiting.attempts) == ("pending", 0)
    async with sessions() as session, session.begin():
        row = await session.get(WritebackTarget, paused_id)
        assert row is not None
        row.enabled = True
    async with httpx.AsyncClient() as client:
        assert await WritebackSender(sessions, client, SenderConfig(), clock).run_once() == 1
    [sent] = await deliveries(sessions, f"{source}:7")
    assert sent.status == "delivered"


@pytest.mark.parametrize("retry_after", ["99999999999999", "\u00b2", "Thu, 99 Foo 2026"])
async def test_one_odd_answer_or_token_neither_stops_the_pass_nor_shows_the_token(sessions, retry_after):
    source = f"zm-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    leaky = "zammad-token-0123456789\n"  # a pasted token's newline: h11 refuses the header, quoting it

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "odd.example":
            return httpx.Response(429, headers=[(b"Retry-After", retry_after.encode("latin-1"))])
        return httpx.Response(200, json={})

    async with sessions() as session, session.begin():
        odd = zendesk_target(source, 1, name=f"odd-{source}", url="https://odd.example")
        token = zendesk_target(source, 1, name=f"tok-{source}", connector="zammad", secret=leaky, options={})
        good = zendesk_target(source, 1, name=f"good-{source}", url="https://good.example")
        garbled = zendesk_target(source, 1, name=f"garbled-{source}", url="https://good.example")
        session.add_all([odd, token, good, garbled])
        await session.flush()
        for target in (odd, token, good, garbled):
            session.add(queued(target.id, f"{source}:{target.id}", "assignment", "P2", clock.now))
        broken = queued(garbled.id, f"{source}:broken", "assignment", "P2", clock.now)
        broken.body = '{"external_id": "7"}'  # a body that is no notification (no kind)
        session.add(broken)
    # A real connection for the token's target: the HTTP/1.1 layer is what refuses the header.
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with sessions() as session, session.begin():
        row = await session.scalar(select(WritebackTarget).where(WritebackTarget.name == f"tok-{source}"))
        assert row is not None
        row.url = f"http://127.0.0.1:{port}"
    real = httpx.AsyncHTTPTransport()
    mock = httpx.MockTransport(answer)

    class Mixed(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.host == "127.0.0.1":
                return await real.handle_async_request(request)
            return await mock.handle_async_request(request)

    async with httpx.AsyncClient(transport=Mixed()) as client:
        assert await WritebackSender(sessions, client, SenderConfig(max_attempts=5), clock).run_once() == 5
    server.close()
    rows = {
        d.event_id: d
        for key in [*(f"{source}:{t.id}" for t in (odd, token, good, garbled)), f"{source}:broken"]
        for d in await deliveries(sessions, key)
    }
    by_target = {d.target_id: d for d in rows.values() if d.event_id != broken.event_id}
    assert by_target[good.id].status == "delivered"  # recorded, not lost with the pass
    odd_one = by_target[odd.id]
    assert odd_one.status == "pending" and "HTTP 429" in (odd_one.last_error or "")
    # A rate limit's wait past the cap is capped (an hour); one that does not parse is a minute.
    waited = 3600 if retry_after.isascii() and retry_after.isdigit() else 60
    assert odd_one.next_attempt_at == clock.now + timedelta(seconds=waited)
    garbled_one = rows[broken.event_id]
    assert garbled_one.status == "failed" and "KeyError" in (garbled_one.last_error or "")  # at once
    failed = by_target[token.id]
    assert failed.status == "pending" and failed.last_error
    assert "zammad-token-0123456789" not in failed.last_error and "<redacted>" in failed.last_error
    async with sessions() as session, session.begin():
        for delivery in (
            await session.scalars(
                select(WritebackDelivery).where(WritebackDelivery.id.in_([r.id for r in rows.values()]))
            )
        ).all():
            delivery.status = "failed"  # not for other tests' senders


async def test_a_notify_action_never_sends_a_helpdesk_another_sources_ticket(sessions, helpdesk):
    source = f"zd-{new_id()[:8]}"
    async with sessions() as session, session.begin():
        session.add(zendesk_target(source, helpdesk.port))
        session.add(
            zendesk_target(
                f"hooks-{source}", helpdesk.port, name=f"hook-{source}", connector="webhook", options={}
            )
        )
    other = f"fd-{new_id()[:8]}"
    state = TicketState(
        ticket_key=f"{other}:42",
        source=other,
        revision=3,
        status=TicketStatus.OPEN,
        team="billing",
        priority=Priority.P1,
        created_at=utc(2026, 12, 7, 9, 0),
    )
    payload = RoutingPayload(state=state, reasons=["SLA breached"])
    envelope = routing_event(EventType.SLA_BREACHED, payload, utc(2026, 12, 7, 9, 0), uuid.uuid4())
    async with sessions() as session, session.begin():
        queue = WritebackQueue()
        # A policy's notify action names both: the signed webhook takes any ticket, Zendesk only its own.
        queue.add(
            EventType.SLA_BREACHED, envelope, payload, "42", named=(f"zendesk-{source}", f"hook-{source}")
        )
        assert await queue.flush(session) == 1
    async with sessions() as session:
        [row] = (
            await session.scalars(
                select(WritebackDelivery).where(WritebackDelivery.ticket_key == f"{other}:42")
            )
        ).all()
        target = await session.get(WritebackTarget, row.target_id)
        assert target is not None and target.connector == "webhook"
        row.status = "failed"  # not for the sender of other tests
        await session.commit()


async def test_group_names_read_back_as_our_teams(sessions):
    source = f"fd-{new_id()[:8]}"
    async with sessions() as session, session.begin():
        session.add(
            zendesk_target(
                source,
                1,
                connector="freshdesk",
                options={"groups": {"billing": 42}, "group_names": {"billing": "Billing"}},
            )
        )
    directory = GroupDirectory(sessions)
    await directory.refresh()
    assert directory.team_of(source, "42") == "billing"  # as the API names it
    assert directory.team_of(source, "Billing") == "billing"  # as Freshdesk's webhooks do
    assert directory.team_of(source, "Sales") is None and directory.team_of("elsewhere", "42") is None


async def test_a_retry_that_would_undo_a_newer_delivery_and_a_group_two_targets_disagree_on_are_refused(
    sessions,
):
    source = f"zd-{new_id()[:8]}"
    at = utc_now()  # a retry refuses deliveries older than the delivered retention by the wall clock
    async with sessions() as session, session.begin():
        await add_teams(session, "billing", "access", "sales")
        target = zendesk_target(source, 1)
        session.add(target)
        await session.flush()
        old = queued(target.id, f"{source}:5", "assignment", "P3", at)
        new = queued(target.id, f"{source}:5", "escalation", "P1", at)
        other = queued(target.id, f"{source}:6", "assignment", "P3", at)
        old.status, new.status, other.status = "failed", "delivered", "failed"
        session.add_all([old, new, other])
    async with await api_client(sessions, writeback_api, Role.ADMIN, "connector admin") as client:
        refused = await client.post(f"/v1/writeback/deliveries/{old.id}/retry")
        assert refused.status_code == 409 and f"older than delivery {new.id}" in refused.json()["detail"]
        retried = await client.post(f"/v1/writeback/deliveries/{other.id}/retry")  # nothing newer
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
        body = {
            "name": f"second-{source}",
            "source": source,
            "connector": "zendesk",
            "url": "https://acme.zendesk.com",
            "secret": TOKEN,
            # The first target has access -> 360001: the same group cannot be billing here.
            "options": {"username": "bot@acme.com", "groups": {"billing": 360001}},
        }
        clash = await client.post("/v1/writeback/targets", json=body)
        assert clash.status_code == 409 and clash.json()["errors"][0]["field"] == "/options"
        assert "'360001' is team 'billing' here but 'access'" in clash.json()["detail"]
        body["options"] = {"username": "bot@acme.com", "groups": {"access": 360001, "sales": 360009}}
        assert (await client.post("/v1/writeback/targets", json=body)).status_code == 201  # agreeing is fine
    async with sessions() as session, session.begin():
        row = await session.get(WritebackDelivery, other.id)
        assert row is not None
        row.status = "failed"  # not for other tests' senders


async def test_an_answer_quoting_the_token_near_its_cut_is_stored_redacted(sessions):
    token = "ghp_" + "Q" * 36
    body = orjson.dumps(
        {"kind": "assignment", "external_id": "a/b#1", "team": "t", "priority": "P2"}
    ).decode()

    def answer(request: httpx.Request) -> httpx.Response:  # the token straddles the 200th character
        return httpx.Response(401, text="x" * 155 + " rejected credentials: Bearer " + token)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sender = WritebackSender(sessions, client, SenderConfig())
        outcome = await sender._send(Target("github", "https://api.github.com", token, {}), body)
    assert outcome.error is not None and "HTTP 401" in outcome.error
    assert "ghp_QQQQ" not in outcome.error and "<redacted>" in outcome.error
