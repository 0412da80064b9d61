"""Write-back guards: a helpdesk target writes only its own source's tickets (however a delivery of
another's came to wait for it), edits of targets and SLA policies that notify them are serialised,
a stale failed delivery is not retried once the newer ones that show it stale may be pruned, the
backoff of any attempt count, and a credential echoed in an answer redacted before it is cut."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import delete, select

from services.router.writeback.connectors import Target
from services.router.writeback.endpoints import router
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
from tests.integration.router_sla.helpers import Clock, api_client, new_id, utc
from tests.integration.router_sla.test_writeback_connectors import queued

SECRET = "zd-api-token-0123456789"


def envelope_for(source: str, external: str, kind: EventType, at):
    state = TicketState(
        ticket_key=f"{source}:{external}",
        source=source,
        revision=1,
        status=TicketStatus.OPEN,
        team="billing",
        priority=Priority.P1,
        created_at=at,
    )
    payload = RoutingPayload(state=state, reasons=["test"])
    return routing_event(kind, payload, at, uuid.uuid4()), payload


async def cleanup(sessions, names: list[str]) -> None:
    async with sessions() as session, session.begin():
        ids = (await session.scalars(select(WritebackTarget.id).where(WritebackTarget.name.in_(names)))).all()
        await session.execute(delete(WritebackDelivery).where(WritebackDelivery.target_id.in_(ids)))
        await session.execute(delete(WritebackTarget).where(WritebackTarget.id.in_(ids)))


async def stored_target(session, name: str, source: str, at, **fields: object) -> int:
    """A target row as an older version may have saved it (no API checks); its id."""
    row = WritebackTarget(
        name=name, source=source, secret=SECRET, event_kinds=[], created_at=at, updated_at=at, **fields
    )
    session.add(row)
    await session.flush()
    return int(row.id)


def recording_sender(sessions, clock, tag: str, seen: list[tuple[str, str, str]], **config):
    def answer(request: httpx.Request) -> httpx.Response:
        if tag in request.url.host:
            seen.append((request.method, request.url.host, request.url.path))
        return httpx.Response(200, json={})

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return WritebackSender(sessions, client, SenderConfig(**config), clock)


async def test_a_webhook_turned_helpdesk_does_not_send_another_sources_queued_ticket_to_the_helpdesk(
    sessions,
):
    """A helpdesk connector only gets its own source's tickets. A webhook target takes any source's
    ticket via `notify`; a PUT that turns it into a Zendesk target (same source) cancels what it
    holds, and the sender would not write Freshdesk's ticket 42 into Zendesk's 42 anyway."""
    tag = new_id()[:8]
    source, other, name = f"zd-{tag}", f"fd-{tag}", f"hook-{tag}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    try:
        async with await api_client(sessions, router, Role.ADMIN, f"admin-{tag}") as client:
            doc = {
                "name": name,
                "source": source,
                "connector": "webhook",
                "url": f"https://hook-{tag}.example/in",
                "secret": SECRET,
                "enabled": False,  # or a backlog / an outage: its deliveries wait
            }
            created = await client.post("/v1/writeback/targets", json=doc)
            assert created.status_code == 201, created.text
            envelope, payload = envelope_for(other, "42", EventType.SLA_BREACHED, clock.now)
            async with sessions() as session, session.begin():
                queue = WritebackQueue()
                queue.add(EventType.SLA_BREACHED, envelope, payload, "42", named=(name,))
                assert await queue.flush(session, clock.now) == 1  # the webhook takes any source
            doc |= {
                "connector": "zendesk",
                "url": f"https://zd-{tag}.example",
                "options": {"username": "bot@acme.com"},
                "enabled": True,
            }
            put = await client.put(
                f"/v1/writeback/targets/{created.json()['id']}",
                json=doc,
                headers={"If-Match": created.headers["ETag"]},
            )
            assert put.status_code == 200, put.text
        seen: list[tuple[str, str, str]] = []
        await recording_sender(sessions, clock, tag, seen).run_once()
        # Freshdesk's ticket 42 must not be written into Zendesk's ticket 42.
        assert seen == [], seen
    finally:
        await cleanup(sessions, [name])


async def test_a_decision_routed_while_a_put_changes_the_source_is_not_sent_to_the_new_account(sessions):
    """A target whose source a PUT changes cancels the deliveries it still holds, since the
    new account would take the old source's ticket numbers as its own. A routing transaction that
    read the targets before the PUT committed inserts its delivery after `_cancel_waiting` ran: it
    stays pending, and the sender must not write old:42 into the new account's ticket 42."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers")
    tag = new_id()[:8]
    old, new, name = f"zd-old-{tag}", f"zd-new-{tag}", f"t-{tag}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    try:
        async with await api_client(sessions, router, Role.ADMIN, f"admin-{tag}") as client:
            doc = {
                "name": name,
                "source": old,
                "connector": "zendesk",
                "url": f"https://old-{tag}.example",
                "secret": SECRET,
                "options": {"username": "bot@acme.com"},
            }
            created = await client.post("/v1/writeback/targets", json=doc)
            assert created.status_code == 201, created.text
            envelope, payload = envelope_for(old, "42", EventType.TICKET_ROUTED, clock.now)
            # The router's routing transaction: the decision and its delivery, as handler.py does.
            async with sessions() as routing, routing.begin():
                queue = WritebackQueue()
                queue.add(EventType.TICKET_ROUTED, envelope, payload, "42")
                assert await queue.flush(routing, clock.now) == 1  # the target read: source `old`
                await routing.flush()
                # Meanwhile an admin re-points the target to another account.
                doc |= {"source": new, "url": f"https://new-{tag}.example"}
                put = await client.put(
                    f"/v1/writeback/targets/{created.json()['id']}",
                    json=doc,
                    headers={"If-Match": created.headers["ETag"]},
                )
                assert put.status_code == 200, put.text
            # routing commits here
        seen: list[tuple[str, str, str]] = []
        await recording_sender(sessions, clock, tag, seen).run_once()
        assert not any(host.startswith("new-") for _, host, _ in seen), seen
    finally:
        await cleanup(sessions, [name])


async def test_a_very_large_max_attempts_backs_off_at_the_cap_and_the_pass_is_recorded(sessions):
    """ROUTER_WRITEBACK_MAX_ATTEMPTS has no upper bound. Past ~1024 attempts the backoff, computed as
    a float, overflowed in run_once's recording transaction: the whole pass rolled back, and the
    deliveries it had sent were sent again after every lease, forever."""
    tag = new_id()[:8]
    name_bad, name_good = f"bad-{tag}", f"good-{tag}"
    clock = Clock(utc(2026, 12, 7, 9, 0))
    try:
        async with sessions() as session, session.begin():
            ids = [
                await stored_target(
                    session,
                    name,
                    f"src-{tag}",
                    clock.now,
                    connector="zendesk",
                    url=f"https://{name}.example",
                    options={"username": "bot@acme.com"},
                )
                for name in (name_bad, name_good)
            ]
            bad = queued(ids[0], f"src-{tag}:1", "assignment", "P3", clock.now)
            bad.attempts = 1100
            good = queued(ids[1], f"src-{tag}:2", "assignment", "P3", clock.now)
            session.add_all([bad, good])
            await session.flush()
            good_id = good.id

        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(500 if request.url.host.startswith("bad-") else 200, json={})

        client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        sender = WritebackSender(sessions, client, SenderConfig(max_attempts=100_000), clock)
        try:
            await sender.run_once()
        except OverflowError as exc:
            pytest.fail(f"run_once raised {exc!r}")
        async with sessions() as session:
            row = await session.get(WritebackDelivery, good_id)
            assert row is not None and row.status == "delivered"
    finally:
        await cleanup(sessions, [name_bad, name_good])


async def test_a_token_echoed_past_the_2000th_character_of_an_answer_is_redacted(sessions):
    """The answer was cut at 2000 characters before redaction: a token straddling character 2000 was
    no longer matched, and once earlier copies shrank to <redacted>, its prefix landed inside the
    stored 500 characters."""
    token = "ghp_" + "Q" * 396  # a 400-character token (the schema allows 500)
    body = orjson.dumps(
        {"kind": "assignment", "external_id": "a/b#1", "team": "t", "priority": "P2"}
    ).decode()

    def answer(request: httpx.Request) -> httpx.Response:  # a proxy echoing the credential back
        return httpx.Response(401, text=("Bearer " + token + " ") * 6)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        sender = WritebackSender(sessions, client, SenderConfig())
        outcome = await sender._send(Target("github", "https://api.github.com", token, {}), body)
    assert outcome.error is not None
    assert "ghp_QQQQ" not in outcome.error, outcome.error


async def test_a_stale_failed_delivery_is_not_retried_once_the_newer_delivered_one_may_be_pruned(sessions):
    """A retry is refused (409) when a newer delivery of its ticket to its target went out
    since, as it would undo it. Delivered rows are pruned after ROUTER_DEDUP_RETENTION_DAYS and failed
    ones kept: after the prune the stale assignment was re-queued and sent over the escalation."""
    from services.router.retention import prune_router_tables

    tag = new_id()[:8]
    name = f"t-{tag}"
    at = utc_now() - timedelta(days=31)  # the retry below runs now, past the 30-day retention
    try:
        async with sessions() as session, session.begin():
            target_id = await stored_target(
                session,
                name,
                f"src-{tag}",
                at,
                connector="zendesk",
                url=f"https://{name}.example",
                options={"username": "bot@acme.com"},
            )
            old = queued(target_id, f"src-{tag}:5", "assignment", "P4", at)
            new = queued(target_id, f"src-{tag}:5", "escalation", "P1", at)
            old.status, new.status = "failed", "delivered"
            session.add_all([old, new])
        async with await api_client(sessions, router, Role.ADMIN, f"admin-{tag}") as client:
            refused = await client.post(f"/v1/writeback/deliveries/{old.id}/retry")
            assert refused.status_code == 409 and "would undo" in refused.json()["detail"]
            await prune_router_tables(sessions, timedelta(days=30))
            again = await client.post(f"/v1/writeback/deliveries/{old.id}/retry")
            assert again.status_code == 409, again.text  # the P1 escalation still went out after it
            assert "retention" in again.json()["detail"]
    finally:
        await cleanup(sessions, [name])


async def test_a_policy_naming_a_target_waits_for_its_deletion_and_is_refused(sessions):
    """A target's deletion checks that no policy notifies it; a policy naming it saved meanwhile
    must wait for the configuration lock, or under READ COMMITTED it still sees the target, both
    commit, and the policy notifies a target that is gone (its breaches notify no one)."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite serializes writers")
    from services.router.slas import service as sla_service
    from services.router.slas.endpoints import router as sla_router
    from services.router.writeback import service as wb_service

    tag = new_id()[:8]
    name, policy = f"t-{tag}", f"pol-{tag}"
    at = utc(2026, 12, 7, 9, 0)
    try:
        async with sessions() as session, session.begin():
            target_id = await stored_target(session, name, "api", at, url="https://hooks.invalid/x")
        document = {
            "document": {
                "applies_when": {"field": "customer_tier", "op": "equals", "value": "no tier has this name"},
                "on_breach": [{"action": "raise_priority"}, {"action": "notify", "target": name}],
            }
        }
        async with await api_client(sessions, sla_router, Role.EDITOR, f"ed-{tag}") as client:
            async with sessions() as deleting, deleting.begin():
                await wb_service.delete_target(deleting, target_id, expected=1, actor="admin")
                saving = asyncio.create_task(client.put(f"/v1/sla/policies/{policy}", json=document))
                await asyncio.sleep(0.3)
                assert not saving.done()  # waits for the configuration lock the deletion holds
            saved = await asyncio.wait_for(saving, timeout=10)  # then sees the target gone
        async with sessions() as session:
            gone = await session.get(WritebackTarget, target_id) is None
            notifying = await sla_service.policies_notifying(session, name)
        assert gone and saved.status_code == 422 and not notifying, (saved.status_code, gone, notifying)
    finally:
        async with sessions() as session, session.begin():
            previous = await sla_service.latest(session, "policy", policy)
            if previous is not None and not previous.deleted:
                await sla_service.save(session, "policy", policy, None, "t", previous=previous)
        await cleanup(sessions, [name])
