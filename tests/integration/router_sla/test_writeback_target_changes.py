"""What a target's state and edits do to its deliveries: a disabled target's are queued and wait;
a target re-pointed to another source does not send the old source's tickets to the new account;
a URL the column cannot hold, or that carries credentials, is refused naming ``/url``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import delete, select

from services.router.writeback.endpoints import router
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.queue import WritebackQueue
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.auth import Role
from shared.db.audit import list_entries
from shared.events import EventType, Priority, RoutingPayload, TicketState, TicketStatus, routing_event
from shared.http.problems import PROBLEM_JSON
from tests.integration.router_sla.helpers import Clock, api_client, new_id, utc
from tests.integration.router_sla.test_writeback_connectors import queued

SECRET = "zd-api-token-0123456789"


@pytest.fixture
async def names(sessions) -> AsyncIterator[list[str]]:
    """Target names a test creates: deleted after it, with their deliveries."""
    made: list[str] = []
    yield made
    async with sessions() as session, session.begin():
        ids = (await session.scalars(select(WritebackTarget.id).where(WritebackTarget.name.in_(made)))).all()
        await session.execute(delete(WritebackDelivery).where(WritebackDelivery.target_id.in_(ids)))
        await session.execute(delete(WritebackTarget).where(WritebackTarget.id.in_(ids)))


def zendesk(name: str, source: str, **changes: object) -> dict[str, object]:
    return {
        "name": name,
        "source": source,
        "connector": "zendesk",
        "url": "https://old.zendesk.example",
        "secret": SECRET,
        "options": {"username": "bot@acme.com"},
        **changes,
    }


async def test_a_disabled_targets_deliveries_are_queued_and_sent_once_it_is_enabled(sessions, names):
    source = f"src-{new_id()[:8]}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    names.append(f"hook-{source}")
    async with sessions() as session, session.begin():
        target = WritebackTarget(
            name=f"hook-{source}",
            source=source,
            url=f"https://hook-{source}.example/in",
            secret=SECRET,
            enabled=False,
            event_kinds=[],
            created_at=clock.now,
            updated_at=clock.now,
        )
        session.add(target)
        await session.flush()
        target_id = target.id
    state = TicketState(
        ticket_key=f"{source}:42",
        source=source,
        revision=1,
        status=TicketStatus.NEW,
        team="billing",
        priority=Priority.P2,
        created_at=clock.now,
    )
    payload = RoutingPayload(state=state, reasons=["rule"])
    envelope = routing_event(EventType.TICKET_ROUTED, payload, clock.now, uuid.uuid4())
    async with sessions() as session, session.begin():
        queue = WritebackQueue()
        queue.add(EventType.TICKET_ROUTED, envelope, payload, "42")
        assert await queue.flush(session, clock.now) == 1  # queued while the target is disabled
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sender = WritebackSender(sessions, client, SenderConfig(), clock)
        await sender.run_once()
        assert f"hook-{source}.example" not in seen  # it waits
        async with sessions() as session, session.begin():
            row = await session.get(WritebackTarget, target_id)
            assert row is not None
            row.enabled = True
        await sender.run_once()
    assert seen.count(f"hook-{source}.example") == 1
    async with sessions() as session:
        [sent] = (
            await session.scalars(select(WritebackDelivery).where(WritebackDelivery.target_id == target_id))
        ).all()
        assert sent.status == "delivered"


async def test_a_target_repointed_to_another_source_cancels_what_it_held(sessions, names):
    old, new = f"zd-old-{new_id()[:6]}", f"zd-new-{new_id()[:6]}"
    names.append(f"t-{old}")
    async with await api_client(sessions, router, Role.ADMIN, f"admin-{old}") as client:
        doc = zendesk(f"t-{old}", old, enabled=False)
        created = await client.post("/v1/writeback/targets", json=doc)
        target_id, etag = created.json()["id"], created.headers["ETag"]
        at = utc(2026, 12, 7, 9, 0)
        async with sessions() as session, session.begin():
            waiting = queued(target_id, f"{old}:42", "assignment", "P1", at, source=old)
            session.add(waiting)
        # Another address, the same source: the queue is still this account's, it stays.
        moved = await client.put(
            f"/v1/writeback/targets/{target_id}",
            json={**doc, "url": "https://moved.zendesk.example"},
            headers={"If-Match": etag},
        )
        assert moved.status_code == 200
        async with sessions() as session:
            row = await session.get(WritebackDelivery, waiting.id)
            assert row is not None and row.status == "pending"
        doc |= {"source": new, "url": "https://new.zendesk.example", "enabled": True}
        put = await client.put(
            f"/v1/writeback/targets/{target_id}", json=doc, headers={"If-Match": moved.headers["ETag"]}
        )
        assert put.status_code == 200, put.text
        async with sessions() as session:
            row = await session.get(WritebackDelivery, waiting.id)
            assert row is not None and row.status == "failed"
            assert row.last_error == f"not sent: the target's source changed from {old!r} to {new!r}"
            [entry, *_] = await list_entries(session, entity="writeback_target", entity_id=str(target_id))
            assert entry.detail["cancelled_deliveries"] == 1
        # Retried, it would still be old's ticket 42 written into new's ticket 42.
        refused = await client.post(f"/v1/writeback/deliveries/{waiting.id}/retry")
        assert refused.status_code == 409 and f"source {old!r}" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://helpdesk.example/" + "a" * 2000, "longer than 2000 characters"),
        ("https://bot:hunter2-hunter2@helpdesk.example/", "put the token in `secret`"),
        ("https://bot@helpdesk.example/", "must not carry credentials"),
        # The API's paths go after it: the query (or fragment) would swallow them, and every
        # request would go to the helpdesk's front page.
        ("https://helpdesk.example/?locale=en", "no query or fragment"),
        ("https://helpdesk.example/agent/#/tickets", "no query or fragment"),
        # The API token goes in a header: over http anyone on the path reads it.
        ("http://helpdesk.example/", "must be https"),
        ("http://127.0.0.1.example/", "must be https"),
        ("http://10.0.0.7:8080/", "must be https"),
    ],
)
async def test_a_url_too_long_or_with_credentials_is_refused_naming_it(sessions, names, url, message):
    name = f"t-{new_id()[:8]}"
    names.append(name)
    async with await api_client(sessions, router, Role.ADMIN, f"admin-{name}") as client:
        refused = await client.post("/v1/writeback/targets", json=zendesk(name, "zd", url=url))
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM_JSON
        [error] = refused.json()["errors"]
        assert error["field"] == "/url" and message in error["message"]
        assert "hunter2" not in refused.text
        fine = await client.post(
            "/v1/writeback/targets", json=zendesk(name, "zd", url="https://a.example/" + "a" * 1900)
        )
        assert fine.status_code == 201


@pytest.mark.parametrize(
    ("connector", "url"),
    [
        # A helpdesk on loopback (a local mock, the tests' own) is not on any network path.
        ("zendesk", "http://127.0.0.1:8080"),
        ("zendesk", "http://127.9.9.9"),
        ("zendesk", "http://localhost:9000/"),
        ("zendesk", "http://[::1]:9000"),
        # A webhook's secret is an HMAC key, never sent: http is its owner's choice.
        ("webhook", "http://hooks.example/in"),
    ],
)
async def test_http_is_taken_on_loopback_and_for_webhooks(sessions, names, connector, url):
    name = f"t-{new_id()[:8]}"
    names.append(name)
    doc = zendesk(name, "zd", url=url)
    if connector == "webhook":
        doc |= {"connector": "webhook", "options": {}}
    async with await api_client(sessions, router, Role.ADMIN, f"admin-{name}") as client:
        made = await client.post("/v1/writeback/targets", json=doc)
    assert made.status_code == 201, made.text


async def test_credentials_of_a_url_saved_before_are_not_shown(sessions, names):
    name = f"t-{new_id()[:8]}"
    names.append(name)
    at = utc(2026, 12, 7, 9, 0)
    async with sessions() as session, session.begin():
        row = WritebackTarget(
            name=name,
            source="zd",
            url="https://bot:hunter2-hunter2@helpdesk.example/hook",
            secret=SECRET,
            event_kinds=[],
            created_at=at,
            updated_at=at,
        )
        session.add(row)
        await session.flush()
        target_id = row.id
    async with await api_client(sessions, router, Role.VIEWER, f"viewer-{name}") as client:
        shown = await client.get(f"/v1/writeback/targets/{target_id}")
    assert shown.json()["url"] == "https://***@helpdesk.example/hook" and "hunter2" not in shown.text
    # Fixed as the README asks (a clean URL, the token in the secret): the audit log, which viewers
    # read, records the old URL without its password.
    async with await api_client(sessions, router, Role.ADMIN, f"admin-{name}") as client:
        fixed = await client.put(
            f"/v1/writeback/targets/{target_id}",
            json=zendesk(name, "zd", url="https://helpdesk.example/hook"),
            headers={"If-Match": shown.headers["etag"]},
        )
        assert fixed.status_code == 200, fixed.text
    async with sessions() as session:
        entries = await list_entries(session, entity="writeback_target", entity_id=str(target_id))
    logged = json.dumps([entry.detail for entry in entries])
    assert "***@helpdesk.example" in logged and "hunter2" not in logged


async def test_a_token_in_a_webhook_urls_query_is_shown_to_no_one(sessions, names):
    name = f"t-{new_id()[:8]}"
    names.append(name)
    url = "https://hooks.example/in?token=q-t0ken-0123456789&team=ops"
    doc = {"name": name, "source": "zd", "url": url, "secret": SECRET}
    async with await api_client(sessions, router, Role.ADMIN, f"admin-{name}") as client:
        made = await client.post("/v1/writeback/targets", json=doc)
        assert made.status_code == 201, made.text
        target_id = made.json()["id"]
        shown = [made, await client.get(f"/v1/writeback/targets/{target_id}")]
        # Sent back as read, the hidden values would be stored in place of the token: refused.
        as_read = await client.put(
            f"/v1/writeback/targets/{target_id}",
            json=doc | {"url": made.json()["url"]},
            headers={"If-Match": made.headers["etag"]},
        )
        assert as_read.status_code == 422
        [error] = as_read.json()["errors"]
        assert error["field"] == "/url" and "***" in error["message"]
        moved = await client.put(
            f"/v1/writeback/targets/{target_id}",
            json=doc | {"url": url.replace("ops", "it")},
            headers={"If-Match": made.headers["etag"]},
        )
        assert moved.status_code == 200, moved.text
    async with await api_client(sessions, router, Role.VIEWER, f"viewer-{name}") as client:
        shown.append(await client.get(f"/v1/writeback/targets/{target_id}"))
        shown.append(await client.get("/v1/writeback/targets"))
    for answer in shown:
        assert "q-t0ken" not in answer.text
    assert shown[1].json()["url"] == "https://hooks.example/in?token=***&team=***"
    # Stored whole: deliveries go to the URL as given.
    async with sessions() as session:
        row = await session.get(WritebackTarget, target_id)
        assert row is not None and row.url == url.replace("ops", "it")
        entries = await list_entries(session, entity="writeback_target", entity_id=str(target_id))
    logged = json.dumps([entry.detail for entry in entries])
    assert "token=***" in logged and "q-t0ken" not in logged
