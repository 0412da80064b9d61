"""Write-back: queued with the decision, signed, retried with backoff against a real local server."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.router.routing.handler import HandlerOptions, RoutingHandler
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.kafka.embedded import free_port
from tests.integration.router_sla.helpers import Clock, event, new_id, producer_for, route, serving, utc

SECRET = "s3cret-s3cret-s3cret"


class Receiver:
    """A real HTTP server on 127.0.0.1 that fails the first ``fail_first`` requests per path."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.seen: list[tuple[str, bytes, dict[str, str]]] = []
        self.port = free_port()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        self.seen.append((request.url.path, body, dict(request.headers)))
        attempts = sum(1 for p, _, _ in self.seen if p == request.url.path)
        if request.url.path == "/broken" or attempts <= self.fail_first:
            return Response("nope", status_code=503)
        return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(fail_first=2)
    app = Starlette(routes=[Route("/{name}", rec.hook, methods=["POST"])])
    async with serving(app, rec.port):
        yield rec


async def test_delivery_retried_until_it_succeeds_and_a_broken_one_fails(sessions, settings_kwargs, receiver):
    source = f"src-{new_id()[:8]}"
    now = utc(2026, 6, 8, 7, 0)
    clock = Clock(now)
    async with sessions() as session, session.begin():
        session.add_all(
            [
                WritebackTarget(
                    name=f"ok-{source}",
                    source=source,
                    url=f"http://127.0.0.1:{receiver.port}/ok",
                    secret=SECRET,
                    enabled=True,
                    event_kinds=["assignment"],
                    revision=1,
                    created_at=now,
                    updated_at=now,
                ),
                WritebackTarget(
                    name=f"broken-{source}",
                    source=source,
                    url=f"http://127.0.0.1:{receiver.port}/broken",
                    secret=SECRET,
                    enabled=True,
                    event_kinds=[],
                    revision=1,
                    created_at=now,
                    updated_at=now,
                ),
            ]
        )
    async with producer_for(settings_kwargs) as (producer, topic):
        handler = RoutingHandler(
            sessions, producer, topic, lambda: route, clock, HandlerOptions(writeback=True)
        )
        consumed = event(new_id(), now)
        consumed.envelope.source = source
        consumed.envelope.ticket_key = f"{source}:{consumed.envelope.payload['external_id']}"
        await handler([consumed])
    async with httpx.AsyncClient() as client:
        sender = WritebackSender(sessions, client, SenderConfig(max_attempts=3, backoff_base_s=10), clock)
        assert await sender.run_once() == 2  # both fail once
        assert await sender.run_once() == 0  # backing off: nothing due yet
        clock.now += timedelta(seconds=10)
        assert await sender.run_once() == 2  # second failures
        clock.now += timedelta(seconds=19)
        assert await sender.run_once() == 0  # 20 s backoff after the second attempt
        clock.now += timedelta(seconds=1)
        assert await sender.run_once() == 2  # ok succeeds, broken fails for good
    async with sessions() as session:
        rows = {
            r.kind + ":" + str(r.status): r
            for r in (
                await session.scalars(
                    select(WritebackDelivery).where(
                        WritebackDelivery.ticket_key == consumed.envelope.ticket_key
                    )
                )
            ).all()
        }
    assert set(rows) == {"assignment:delivered", "assignment:failed"}
    assert rows["assignment:delivered"].attempts == 3
    failed = rows["assignment:failed"]
    assert failed.attempts == 3 and "HTTP 503" in (failed.last_error or "")
    # The signature covers the raw body with the shared secret.
    _path, body, headers = next(s for s in receiver.seen if s[0] == "/ok")
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-ticket-router-signature"] == expected
    assert headers["x-ticket-router-timestamp"].isdigit()
    assert b'"kind":"assignment"' in body and b'"team":"access"' in body
