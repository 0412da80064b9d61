"""``POST /v1/tickets`` over HTTP: auth and validation answers, Idempotency-Key dedupe, and the
cached "outbox empty" check keeping a ticket's order behind rows another replica parked."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

import orjson
from sqlalchemy import func, select

from services.intake.deliveries import prune_deliveries
from services.intake.models import WebhookDelivery
from services.intake.publisher import EventPublisher
from services.intake.tickets.endpoints import _digest, idempotency_delivery_id
from services.intake.tickets.schemas import TicketIn
from shared.auth import Role
from shared.db.models import OutboxMessage
from shared.db.outbox import outbox_row
from shared.events import EventType, ticket_event, utc_now
from tests.e2e.stack import make_key
from tests.integration.intake.helpers import Intake, read_topic

PROBLEM = "application/problem+json"


async def scoped(intake: Intake, key: str) -> str:
    """The delivery id ``key`` is recorded under for the test's intake API key."""
    caller = await intake.app.state.keys.caller_of(intake.intake["Authorization"].removeprefix("Bearer "))
    assert caller is not None
    return idempotency_delivery_id(caller.key_id, key)


async def test_auth_comes_before_validation(intake: Intake) -> None:
    missing = await intake.client.post("/v1/tickets", json={"priority": "whenever"})
    assert missing.status_code == 401 and missing.headers["content-type"] == PROBLEM
    viewer = await intake.client.post(
        "/v1/tickets", json={"external_id": "1"}, headers={"Authorization": "Bearer tr_intake_nope"}
    )
    assert viewer.status_code == 401


async def test_an_undeclared_query_parameter_is_refused_naming_it(intake: Intake) -> None:
    """``POST /v1/tickets`` takes no query parameter: one given (``?dry_run=1``, which a client may
    believe a preview) is a 400 naming ``/query/<name>``, as on the admin APIs, before the key is
    checked, and nothing is accepted. Webhooks keep whatever query the vendor adds."""
    headers = {**intake.intake, "Idempotency-Key": f"q-{uuid.uuid4().hex}"}
    ticket = {"external_id": f"q-{uuid.uuid4().hex[:8]}", "subject": "query"}
    refused = await intake.client.post("/v1/tickets", params={"dry_run": "1"}, headers=headers, json=ticket)
    assert refused.status_code == 400 and refused.headers["content-type"] == PROBLEM, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["/query/dry_run"]
    assert "dry_run" in refused.json()["detail"] and "takes none" in refused.json()["detail"]
    anonymous = await intake.client.post("/v1/tickets", params={"a/b": ""}, json=ticket)
    assert anonymous.status_code == 400 and anonymous.json()["errors"][0]["field"] == "/query/a~1b"
    accepted = await intake.client.post("/v1/tickets", headers=headers, json=ticket)
    assert accepted.status_code == 202 and accepted.json()["duplicate"] is False  # none was recorded
    operation = intake.app.openapi()["paths"]["/v1/tickets"]["post"]
    assert "/query/<name>" in operation["responses"]["400"]["description"]


async def test_a_field_named_like_a_location_is_pointed_at(intake: Intake) -> None:
    """errors[].field is an RFC 6901 pointer into the body: a field the client called "body" (or
    "query") is that field, not the body's root, and "/" or "~" in a key are escaped."""
    for key, pointer in (("body", "/body"), ("query", "/query"), ("a/b", "/a~1b"), ("x~y", "/x~0y")):
        extra = await intake.client.post(
            "/v1/tickets", headers=intake.intake, json={"external_id": "1", key: 1}
        )
        assert extra.status_code == 422 and extra.headers["content-type"] == PROBLEM
        assert [e["field"] for e in extra.json()["errors"]] == [pointer], extra.text
    nested = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "1", "requester": {"body": "x"}}
    )
    assert [e["field"] for e in nested.json()["errors"]] == ["/requester/body"], nested.text


async def test_bad_input_names_the_field(intake: Intake) -> None:
    bad = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "1", "priority": "whenever"}
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert bad.json()["errors"][0]["field"] == "/priority"
    nested = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "1", "requester": {"email": 3}}
    )
    assert nested.status_code == 422 and nested.json()["errors"][0]["field"] == "/requester/email"
    huge = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "1", "custom_fields": {"n": [2**70]}}
    )
    assert huge.status_code == 422 and huge.json()["errors"][0]["field"] == "/custom_fields"
    key = await intake.client.post(
        "/v1/tickets",
        headers={**intake.intake, "Idempotency-Key": "has space"},
        json={"external_id": "1"},
    )
    assert key.status_code == 422 and key.json()["errors"][0]["field"] == "/header/Idempotency-Key"
    broken = await intake.client.post(
        "/v1/tickets", headers={**intake.intake, "Content-Type": "application/json"}, content=b"{"
    )
    assert broken.status_code == 400 and broken.headers["content-type"] == PROBLEM  # as its OpenAPI says
    assert broken.json()["detail"].startswith("the body is not valid JSON"), broken.text
    text = await intake.client.post(
        "/v1/tickets",
        headers={**intake.intake, "Content-Type": "text/plain"},
        content=b'{"external_id": "1"}',
    )
    assert text.status_code == 422
    # Each within its own limit, but "source:external_id" would not fit the 300-character key.
    long_key = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "x" * 200, "source": "s" * 100}
    )
    assert long_key.status_code == 422 and long_key.headers["content-type"] == PROBLEM
    assert long_key.json()["errors"][0]["field"] == "/external_id"
    fits = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "x" * 199, "source": "s" * 100}
    )
    assert fits.status_code == 202 and fits.json()["ticket_key"] == "s" * 100 + ":" + "x" * 199


async def test_a_utf8_byte_order_mark_before_the_ticket_is_skipped(intake: Intake) -> None:
    # A file saved by Notepad or Windows PowerShell (curl --data-binary @ticket.json) starts with
    # one; RFC 8259 lets a reader ignore it, and the webhooks do. It was a 400, every time.
    body = "\ufeff".encode() + orjson.dumps({"external_id": "bom-1", "subject": "Drucker läuft"})
    headers = {**intake.intake, "Content-Type": "application/json"}
    accepted = await intake.client.post("/v1/tickets", headers=headers, content=body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["ticket_key"] == "api:bom-1"
    twice = await intake.client.post("/v1/tickets", headers=headers, content=b"\xef\xbb\xbf" + body)
    assert twice.status_code == 400 and twice.headers["content-type"] == PROBLEM  # one mark, not two


async def test_idempotency_key_publishes_once(intake: Intake) -> None:
    headers = {**intake.intake, "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    ticket = {"external_id": "idem-1", "subject": "once"}
    first = await intake.client.post("/v1/tickets", headers=headers, json=ticket)
    again = await intake.client.post("/v1/tickets", headers=headers, json=ticket)
    assert first.status_code == 202 and first.json()["delivery"] == "published"
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["event_id"] == first.json()["event_id"]
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [str(e.event_id) for e in events] == [first.json()["event_id"]]


async def test_a_key_reused_with_another_ticket_is_refused(intake: Intake) -> None:
    key = f"k-{uuid.uuid4().hex}"
    headers = {**intake.intake, "Idempotency-Key": key}
    first = await intake.client.post(
        "/v1/tickets", headers=headers, json={"external_id": "idem-2", "custom_fields": {"a": 1, "b": 2}}
    )
    assert first.status_code == 202
    # The same ticket written differently (key order, spacing) is the same request.
    respelled = await intake.client.post(
        "/v1/tickets",
        headers={**headers, "Content-Type": "application/json"},
        content=b'{ "custom_fields": {"b": 2, "a": 1},   "external_id": "idem-2" }',
    )
    assert respelled.status_code == 200 and respelled.json()["duplicate"] is True
    other = await intake.client.post(
        "/v1/tickets", headers=headers, json={"external_id": "idem-2", "subject": "something else"}
    )
    assert other.status_code == 422 and other.headers["content-type"] == PROBLEM
    assert other.json()["errors"][0]["field"] == "/header/Idempotency-Key"
    assert "different ticket" in other.json()["errors"][0]["message"]
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [str(e.event_id) for e in events] == [first.json()["event_id"]]
    # A key claimed before digests were kept answers duplicate, whatever the body.
    publisher: EventPublisher = intake.app.state.publisher
    async with publisher.sessions() as session:
        row = await session.get(WebhookDelivery, ("api", await scoped(intake, key)))
        assert row is not None and row.request_digest is not None
        row.request_digest = None
        await session.commit()
    legacy = await intake.client.post(
        "/v1/tickets", headers=headers, json={"external_id": "idem-2", "subject": "something else"}
    )
    assert legacy.status_code == 200 and legacy.json()["duplicate"] is True


async def test_keys_are_scoped_per_api_key(intake: Intake) -> None:
    """Two clients (API keys) choosing the same Idempotency-Key are two requests, as at Stripe: the
    second client's ticket was refused as a reuse (422), or, the same ticket, acknowledged as a
    duplicate and never published."""
    other_client = {"Authorization": f"Bearer {await make_key(intake.settings.database_url, Role.INTAKE)}"}
    key = f"k-{uuid.uuid4().hex}"
    first = await intake.client.post(
        "/v1/tickets", headers={**intake.intake, "Idempotency-Key": key}, json={"external_id": "scoped-1"}
    )
    other = await intake.client.post(
        "/v1/tickets", headers={**other_client, "Idempotency-Key": key}, json={"external_id": "scoped-2"}
    )
    same = await intake.client.post(
        "/v1/tickets", headers={**other_client, "Idempotency-Key": f"{key}-b"}, json={"external_id": "s-3"}
    )
    mine = await intake.client.post(
        "/v1/tickets", headers={**intake.intake, "Idempotency-Key": f"{key}-b"}, json={"external_id": "s-3"}
    )
    assert [r.status_code for r in (first, other, same, mine)] == [202, 202, 202, 202], other.text
    ids = {r.json()["event_id"] for r in (first, other, same, mine)}
    assert len(ids) == 4
    # Each client's retry is still its own duplicate.
    retry = await intake.client.post(
        "/v1/tickets", headers={**other_client, "Idempotency-Key": key}, json={"external_id": "scoped-2"}
    )
    assert retry.status_code == 200 and retry.json()["event_id"] == other.json()["event_id"]
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 4)
    assert sorted(str(e.event_id) for e in events) == sorted(ids)
    # The longest key, with the API key's id before it, fits the column (200).
    longest = {**other_client, "Idempotency-Key": "k" * 150}
    made = await intake.client.post("/v1/tickets", headers=longest, json={"external_id": "scoped-4"})
    again = await intake.client.post("/v1/tickets", headers=longest, json={"external_id": "scoped-4"})
    assert (made.status_code, again.status_code) == (202, 200), made.text


async def test_a_key_recorded_before_keys_were_scoped_still_answers_its_retry(intake: Intake) -> None:
    """A record of the unscoped shape (``idempotency:<key>``, written before the upgrade) still
    acknowledges a retry of its request; another request under that key is not refused for it (it
    may be another client's), and is published."""
    publisher: EventPublisher = intake.app.state.publisher
    key = f"k-{uuid.uuid4().hex}"
    ticket = {"external_id": "legacy-1"}
    digest = _digest(TicketIn.model_validate(ticket))
    async with publisher.sessions() as session:
        session.add(WebhookDelivery(source="api", delivery_id="idempotency:" + key, request_digest=digest))
        await session.commit()
    headers = {**intake.intake, "Idempotency-Key": key}
    retry = await intake.client.post("/v1/tickets", headers=headers, json=ticket)
    assert retry.status_code == 200 and retry.json()["duplicate"] is True, retry.text
    other = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "legacy-2"})
    assert other.status_code == 202, other.text
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [str(e.event_id) for e in events] == [other.json()["event_id"]]


async def test_a_key_reused_after_its_record_was_pruned_is_a_new_event(intake: Intake) -> None:
    """Once the ledger pruned a key (``INTAKE_DELIVERY_RETENTION_DAYS``), a reuse with another ticket
    is no longer refused: it is accepted, and must not carry the first request's event id, which the
    router keeps longer (``ROUTER_DEDUP_RETENTION_DAYS``) and would skip as a redelivery, losing a
    ticket answered 202. A retry of the first request itself still has the first event id."""
    key = f"k-{uuid.uuid4().hex}"
    headers = {**intake.intake, "Idempotency-Key": key}
    first = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "pruned-1"})
    assert first.status_code == 202, first.text
    publisher: EventPublisher = intake.app.state.publisher
    async with publisher.sessions() as session:
        row = await session.get(WebhookDelivery, ("api", await scoped(intake, key)))
        assert row is not None
        row.received_at = utc_now() - timedelta(days=8)
        await session.commit()
    assert await prune_deliveries(publisher.sessions, timedelta(days=7)) >= 1
    other = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "pruned-2"})
    assert other.status_code == 202, other.text
    assert other.json()["event_id"] != first.json()["event_id"]
    async with publisher.sessions() as session:
        row = await session.get(WebhookDelivery, ("api", await scoped(intake, key)))
        assert row is not None
        await session.delete(row)
        await session.commit()
    retry = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "pruned-1"})
    assert retry.status_code == 202 and retry.json()["event_id"] == first.json()["event_id"]


async def test_what_the_pipeline_cannot_carry_is_refused_and_blocks_nothing(intake: Intake) -> None:
    """Accepted, an event the producer refuses as too large sat at the head of the outbox for good,
    and every ticket after it waited behind it; U+0000 and deep nesting were dead-lettered by the
    router. Each is refused naming the field, and the next ticket is published as usual."""
    post = intake.client.post
    big = await post(
        "/v1/tickets",
        headers=intake.intake,
        json={"external_id": "big", "custom_fields": {"blob": "x" * 1_000_000}},
    )
    assert big.status_code == 413 and big.headers["content-type"] == PROBLEM
    assert big.json()["errors"][0]["field"] == "/custom_fields"
    deep: dict[str, object] = {}
    for _ in range(40):
        deep = {"d": deep}
    nested = await post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "deep", "custom_fields": deep}
    )
    assert nested.status_code == 422 and nested.json()["errors"][0]["field"] == "/custom_fields"
    nul = await post("/v1/tickets", headers=intake.intake, json={"external_id": "nul", "subject": "a\x00b"})
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "/subject"
    limit = intake.settings.intake_max_body_bytes
    huge = await post(
        "/v1/tickets",
        headers={**intake.intake, "Content-Type": "application/json"},
        content=b'{"external_id": "huge", "subject": "' + b"x" * limit + b'"}',
    )
    assert huge.status_code == 413 and huge.headers["content-type"] == PROBLEM
    # Within every field's limit in a script of three bytes a character: ~600 kB as an event, carried.
    japanese = await post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "ja", "description": "障" * 200_000}
    )
    assert japanese.status_code == 202, japanese.text
    after = await post("/v1/tickets", headers=intake.intake, json={"external_id": "after"})
    assert after.status_code == 202 and after.json()["delivery"] == "published"
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 2)
    assert sorted(e.ticket_key for e in events) == ["api:after", "api:ja"]


async def test_a_webhook_the_pipeline_cannot_carry_is_refused_naming_the_field(intake: Intake) -> None:
    name = f"native-{uuid.uuid4().hex[:8]}"
    await intake.add_source(name, "native", "whsec-size-0123456789")
    body = {"external_id": "w-big", "custom_fields": {"blob": ["y" * 1000] * 1000}}
    answer = await intake.client.post(
        f"/v1/webhooks/{name}", headers={"X-Webhook-Secret": "whsec-size-0123456789"}, json=body
    )
    assert answer.status_code == 413 and answer.json()["errors"][0]["field"] == "/custom_fields"


async def test_without_a_key_no_dedupe_row_is_written(intake: Intake) -> None:
    publisher: EventPublisher = intake.app.state.publisher
    async with publisher.sessions() as session:
        before = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    for n in range(5):
        response = await intake.client.post(
            "/v1/tickets", headers=intake.intake, json={"external_id": f"plain-{n}"}
        )
        assert response.status_code == 202 and response.json()["delivery"] == "published"
    async with publisher.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == before


async def test_rows_parked_by_another_replica_keep_the_ticket_in_order(intake: Intake) -> None:
    publisher: EventPublisher = intake.app.state.publisher
    warm = await intake.client.post("/v1/tickets", headers=intake.intake, json={"external_id": "warm"})
    assert warm.json()["delivery"] == "published"  # this replica now caches "outbox empty"
    relay_once = publisher.relay_once

    async def paused() -> int:
        return 0

    publisher.relay_once = paused  # type: ignore[method-assign]  # so the park below waits for us
    try:
        # Another replica parks the first event of ticket "ord" and (after its hold) answers 2xx.
        parked = ticket_event(EventType.TICKET_CREATED, "api", TicketIn(external_id="ord").snapshot())
        async with publisher.sessions() as session, session.begin():
            session.add(outbox_row(publisher.owner, publisher.topic, parked))
        await asyncio.sleep(publisher.gate.ttl_s * 1.01 + 0.005)
        update = await intake.client.post(
            "/v1/tickets", headers=intake.intake, json={"external_id": "ord", "status": "open"}
        )
        assert update.status_code == 202 and update.json()["delivery"] == "queued"
    finally:
        publisher.relay_once = relay_once  # type: ignore[method-assign]
    events = await read_topic(
        intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 3, timeout_s=30
    )
    order = [str(e.event_id) for e in events if e.ticket_key == "api:ord"]
    assert order == [str(parked.event_id), update.json()["event_id"]]
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # rows are deleted once the broker acknowledged them
        async with publisher.sessions() as session:
            left = await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.topic == publisher.topic)
            )
        if left == 0:
            break
        assert asyncio.get_running_loop().time() < deadline, f"{left} rows still in the outbox"
        await asyncio.sleep(0.1)


async def test_an_intake_key_cannot_post_under_a_webhook_sources_name(intake: Intake) -> None:
    """The generic intake key posted under any source name, a signed Zendesk source's too, and so
    created or overwrote that source's tickets without its signature. A configured source's name
    (enabled or not) is refused naming the field, to admin keys too; other names go through."""
    name = f"zd-{uuid.uuid4().hex[:8]}"
    url = f"/v1/sources/{name}"
    created = await intake.add_source(name, "zendesk", "whsec-zendesk-0123456789")
    for headers in (intake.intake, intake.admin):
        forged = await intake.client.post(
            "/v1/tickets", headers=headers, json={"external_id": "77", "source": name, "status": "solved"}
        )
        assert forged.status_code == 422 and forged.headers["content-type"] == PROBLEM
        assert forged.json()["errors"][0]["field"] == "/source"
        assert f"/v1/webhooks/{name}" in forged.json()["errors"][0]["message"]
    disabled = await intake.client.patch(
        url, headers={**intake.admin, "If-Match": created.headers["etag"]}, json={"enabled": False}
    )
    assert disabled.status_code == 200
    still = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "77", "source": name}
    )
    assert still.status_code == 422 and still.json()["errors"][0]["field"] == "/source"
    removed = await intake.client.delete(url, headers={**intake.admin, "If-Match": disabled.headers["etag"]})
    assert removed.status_code == 204
    other = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "77", "source": f"web-{name}"}
    )
    assert other.status_code == 202, other.text
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [e.ticket_key for e in events] == [f"web-{name}:77"]
    # The tickets posted without a source are "api"'s: no webhook source may take that name.
    api = await intake.client.post(
        "/v1/sources",
        headers=intake.admin,
        json={"name": "api", "type": "native", "secret": "whsec-0123456789"},
    )
    assert api.status_code == 422 and api.json()["errors"][0]["field"] == "/name"


async def test_a_deleted_webhook_sources_name_stays_refused(intake: Intake) -> None:
    """Once a webhook source was deleted its name was free: an intake key could post under it,
    update the old source's tickets still in the router and trigger write-backs to its helpdesk.
    The name is now remembered and refused (422 naming /source, saying whose it was); a source
    created again under it takes it back, and deleting that one retires it again."""
    name = f"zd-{uuid.uuid4().hex[:8]}"
    url = f"/v1/sources/{name}"

    async def post() -> dict[str, object]:
        answer = await intake.client.post(
            "/v1/tickets",
            headers=intake.intake,
            json={"external_id": "77", "source": name, "status": "solved"},
        )
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text
        [error] = answer.json()["errors"]
        assert error["field"] == "/source"
        return dict(error)

    for _ in range(2):  # created again under the retired name: a configured source again
        await intake.add_source(name, "zendesk", "whsec-zendesk-0123456789")
        assert f"/v1/webhooks/{name}" in str((await post())["message"])
        removed = await intake.client.delete(url, headers={**intake.admin, "If-Match": "*"})
        assert removed.status_code == 204
        retired = await post()
        assert "belonged to a webhook source" in str(retired["message"]), retired
    admin = await intake.client.post(
        "/v1/tickets", headers=intake.admin, json={"external_id": "77", "source": name}
    )
    assert admin.status_code == 422 and admin.json()["errors"][0]["field"] == "/source"


async def test_an_instant_no_utc_clock_holds_is_refused_naming_the_field(intake: Intake) -> None:
    """Year 1 at +01:00 (or 9999 at -01:00) is a valid aware timestamp, but its UTC instant lies
    outside datetime's range: accepted, the router failed storing it on every attempt and the
    ticket ended in the dead-letter topic. Refused up front, naming the field."""
    for field, value in (
        ("created_at", "0001-01-01T00:00:00+01:00"),
        ("updated_at", "9999-12-31T23:59:59-01:00"),
    ):
        answer = await intake.client.post(
            "/v1/tickets", headers=intake.intake, json={"external_id": "far-off", field: value}
        )
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text
        assert answer.json()["errors"][0]["field"] == f"/{field}"
    edge = await intake.client.post(
        "/v1/tickets",
        headers=intake.intake,
        json={"external_id": "edge", "created_at": "0001-01-01T00:00:00Z"},
    )
    assert edge.status_code == 202, edge.text


async def test_a_key_reused_with_a_status_or_tags_said_at_their_default_is_refused(intake: Intake) -> None:
    """``"status": "new"`` reopens a ticket and ``"tags": []`` clears its tags, where leaving them
    out keeps what the ticket has; the digest compared both requests as the same (defaults filled
    in), so the second was acknowledged as a duplicate and its change silently dropped."""
    saids: list[dict[str, object]] = [{"status": "new"}, {"tags": []}]
    for said in saids:
        headers = {**intake.intake, "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        first = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "said"})
        assert first.status_code == 202, first.text
        again = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "said"})
        assert again.status_code == 200 and again.json()["duplicate"] is True
        other = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "said", **said})
        assert other.status_code == 422, (said, other.text)
        assert other.json()["errors"][0]["field"] == "/header/Idempotency-Key"
        # And the other way round: the first said it, the second does not.
        headers = {**intake.intake, "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        first = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "said", **said})
        assert first.status_code == 202, first.text
        same = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "said", **said})
        assert same.status_code == 200 and same.json()["duplicate"] is True
        other = await intake.client.post("/v1/tickets", headers=headers, json={"external_id": "said"})
        assert other.status_code == 422, (said, other.text)


def test_the_digest_of_a_request_without_defaults_said_is_unchanged() -> None:
    """Keys claimed before the digest told said defaults apart still match their retries."""
    ticket = TicketIn.model_validate({"external_id": "4711", "subject": "VPN", "tags": ["vpn"]})
    canonical = orjson.dumps(ticket.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    assert _digest(ticket) == hashlib.sha256(canonical).hexdigest()
