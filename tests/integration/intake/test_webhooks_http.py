"""Every adapter through POST /v1/webhooks/{name}: real app, real broker, real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.events import EventEnvelope, utc_now
from tests.integration.intake.helpers import Intake, read_topic, running_intake
from tests.unit.webhooks._helpers import basic, fixture, github_sample, hub, zendesk_signature

SECRET = "whsec-current-0123456789"
WRONG = "whsec-wrong-0123456789"
PROBLEM = "application/problem+json"

GENERIC_OPTIONS: dict[str, Any] = {
    "mapping": {
        "external_id": "/ticket/id",
        "subject": "/ticket/title",
        "status": "/ticket/state",
        "priority": "/ticket/severity",
        "event_type": "/event",
    },
    "status_map": {"Triggered": "open", "Acknowledged": "pending"},
    "priority_map": {"Sev1": "P1", "Sev2": "high"},
    "event_map": {"incident.triggered": "created"},
}


def _hub(
    header: str, algorithm: str, extra: dict[str, str] | None = None
) -> Callable[[bytes, str], dict[str, str]]:
    return lambda body, secret: {header: hub(body, secret, algorithm), **(extra or {})}


def _zendesk(body: bytes, secret: str) -> dict[str, str]:
    stamp = utc_now().isoformat()
    return {
        "X-Zendesk-Webhook-Signature": zendesk_signature(body, secret, stamp),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Id": "01HWEBHOOK",
        "X-Zendesk-Webhook-Invocation-Id": uuid.uuid4().hex,
    }


@dataclass
class Case:
    adapter: str
    body: Callable[[], bytes]
    sign: Callable[[bytes, str], dict[str, str]]
    external_id: str
    options: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "github",
        lambda: github_sample("issues.opened.json"),
        _hub("X-Hub-Signature-256", "sha256", {"X-GitHub-Event": "issues"}),
        "Codertocat/Hello-World#1",
    ),
    Case(
        "github",
        lambda: github_sample("issue_comment.created.json"),
        _hub("X-Hub-Signature-256", "sha256", {"X-GitHub-Event": "issue_comment"}),
        "Codertocat/Hello-World#1",
    ),
    Case("zendesk", lambda: fixture("zendesk", "ticket.created.json"), _zendesk, ""),
    Case("jira", lambda: fixture("jira", "issue_created.json"), _hub("X-Hub-Signature", "sha256"), ""),
    Case("intercom", lambda: fixture("intercom", "ticket.created.json"), _hub("X-Hub-Signature", "sha1"), ""),
    Case("zammad", lambda: fixture("zammad", "ticket_created.json"), _hub("X-Hub-Signature", "sha1"), ""),
    Case(
        "freshdesk",
        lambda: fixture("freshdesk", "ticket_created.json"),
        lambda body, secret: {"X-Webhook-Secret": secret},
        "",
    ),
    Case(
        "generic",
        lambda: fixture("generic", "alert.json"),
        lambda body, secret: {"X-Webhook-Secret": secret},
        "9001",
        GENERIC_OPTIONS,
    ),
    Case(
        "native",
        lambda: fixture("native", "ticket.json"),
        lambda body, secret: {"Authorization": basic("native", secret)},
        "",
    ),
]


def _name(adapter: str) -> str:
    return f"{adapter}-{uuid.uuid4().hex[:8]}"


async def _post(
    intake: Intake, name: str, body: bytes, headers: dict[str, str], content_type: str = "application/json"
) -> Any:
    return await intake.client.post(
        f"/v1/webhooks/{name}", content=body, headers={"Content-Type": content_type, **headers}
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.adapter}-{c.external_id or 'fixture'}")
async def test_adapter_signed_and_unsigned(intake: Intake, case: Case) -> None:
    body = case.body()
    name = _name(case.adapter)
    await intake.add_source(name, case.adapter, SECRET, **case.options)

    forged = await _post(intake, name, body, case.sign(body, WRONG))
    assert forged.status_code == 401, forged.text
    assert forged.headers["content-type"] == PROBLEM and forged.json()["status"] == 401

    accepted = await _post(intake, name, body, case.sign(body, SECRET))
    assert accepted.status_code == 202, accepted.text
    result = accepted.json()
    assert result["duplicate"] is False and result["delivery"] == "published"
    assert len(result["event_ids"]) == 1

    again = await _post(intake, name, body, case.sign(body, SECRET) | _same_delivery(accepted))
    assert again.status_code == 200 and again.json()["duplicate"] is True

    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [str(e.event_id) for e in events] == result["event_ids"]  # one event: no forged, no duplicate
    event = events[0]
    assert event.source == name and event.ticket_key == result["ticket_keys"][0]
    if case.external_id:
        assert event.ticket().external_id == case.external_id


def _same_delivery(accepted: Any) -> dict[str, str]:
    """Redeliveries repeat the vendor's delivery headers; the body-hash ids repeat by themselves."""
    request = accepted.request
    return {
        k: v
        for k, v in request.headers.items()
        if k.lower() in ("x-github-delivery", "x-zendesk-webhook-invocation-id")
    }


async def test_rotation_keeps_the_newest_two_secrets(intake: Intake) -> None:
    name = _name("github")
    tag = (await intake.add_source(name, "github", "first-secret-000")).headers["etag"]
    body = github_sample("issues.opened.json")
    for secret in ("second-secret-00", "third-secret-000"):
        rotated = await intake.client.post(
            f"/v1/sources/{name}/rotate", json={"secret": secret}, headers={**intake.admin, "If-Match": tag}
        )
        assert rotated.status_code == 200 and rotated.json()["secret_count"] == 2
        assert secret not in rotated.text
        tag = rotated.headers["etag"]
    headers = {"X-GitHub-Event": "issues"}
    old = await _post(
        intake, name, body, {**headers, "X-Hub-Signature-256": hub(body, "first-secret-000", "sha256")}
    )
    assert old.status_code == 401
    for secret in ("second-secret-00", "third-secret-000"):
        ok = await _post(
            intake,
            name,
            body,
            {
                **headers,
                "X-GitHub-Delivery": uuid.uuid4().hex,
                "X-Hub-Signature-256": hub(body, secret, "sha256"),
            },
        )
        assert ok.status_code == 202, ok.text


async def test_error_statuses_are_problem_json(intake: Intake) -> None:
    name = _name("native")
    await intake.add_source(name, "native", SECRET)
    auth = {"Authorization": basic("x", SECRET)}
    good = json.dumps({"external_id": "ok-1", "subject": "fine"}).encode()

    unknown = await _post(intake, "no-such-source", good, auth)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM

    wrong_type = await _post(intake, name, good, auth, content_type="text/plain")
    assert wrong_type.status_code == 415 and wrong_type.headers["content-type"] == PROBLEM
    # Named like every other 415 of the API: the header, and what it said.
    assert [e["field"] for e in wrong_type.json()["errors"]] == ["/header/content-type"]
    assert "'text/plain'" in wrong_type.json()["detail"]
    form = await _post(
        intake, name, b"payload=%7B%7D", auth, content_type="application/x-www-form-urlencoded"
    )
    assert form.status_code == 415 and "x-www-form-urlencoded" in form.json()["errors"][0]["message"]
    vendor_json = await _post(
        intake,
        name,
        json.dumps({"external_id": "ok-2"}).encode(),
        auth,
        content_type="application/vnd.vendor+json; charset=utf-8",
    )
    assert vendor_json.status_code == 202

    too_big = await _post(
        intake, name, b'{"external_id": "x", "description": "' + b"a" * 1_100_000 + b'"}', auth
    )
    assert too_big.status_code == 413 and too_big.headers["content-type"] == PROBLEM

    malformed = await _post(intake, name, b'{"external_id": ', auth)
    assert malformed.status_code == 400 and malformed.headers["content-type"] == PROBLEM

    unmappable = await _post(intake, name, json.dumps({"subject": "no id"}).encode(), auth)
    assert unmappable.status_code == 422 and unmappable.headers["content-type"] == PROBLEM
    assert unmappable.json()["errors"][0]["field"] == "/external_id"

    long_name = "n" * 90 + uuid.uuid4().hex[:10]  # the longest source name there may be
    await intake.add_source(long_name, "native", SECRET)
    long_key = await _post(intake, long_name, json.dumps({"external_id": "x" * 200}).encode(), auth)
    assert long_key.status_code == 422 and long_key.headers["content-type"] == PROBLEM
    assert long_key.json()["errors"][0]["field"] == "/external_id"

    ignored_name = _name("intercom")
    await intake.add_source(ignored_name, "intercom", SECRET)
    ping = fixture("intercom", "ping.json")
    ignored = await _post(intake, ignored_name, ping, {"X-Hub-Signature": hub(ping, SECRET, "sha1")})
    assert (
        ignored.status_code == 202 and ignored.json()["ignored"] is True and ignored.json()["event_ids"] == []
    )

    disabled = await intake.client.patch(
        f"/v1/sources/{name}", json={"enabled": False}, headers={**intake.admin, "If-Match": "*"}
    )
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    gone = await _post(intake, name, good, auth)
    assert gone.status_code == 404

    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [e.ticket().external_id for e in events] == ["ok-2"]


async def test_rate_limit_per_source(settings_kwargs: dict[str, object], database_url: str) -> None:
    async with running_intake(
        database_url=database_url, intake_rate_limit_per_s=0.5, intake_rate_limit_burst=2, **settings_kwargs
    ) as intake:
        limited, other = _name("native"), _name("native")
        await intake.add_source(limited, "native", SECRET)
        await intake.add_source(other, "native", SECRET)
        auth = {"Authorization": basic("x", SECRET)}
        statuses = []
        for i in range(3):
            body = json.dumps({"external_id": f"rl-{i}"}).encode()
            statuses.append((await _post(intake, limited, body, auth)).status_code)
        assert statuses == [202, 202, 429]
        limited_response = await _post(intake, limited, b"{}", auth)
        assert limited_response.headers["content-type"] == PROBLEM
        assert 1 <= int(limited_response.headers["retry-after"]) <= 2
        # Buckets are per source: another source is unaffected.
        assert (
            await _post(intake, other, json.dumps({"external_id": "x"}).encode(), auth)
        ).status_code == 202


async def test_a_webhook_instant_no_utc_clock_holds_is_refused_naming_the_field(intake: Intake) -> None:
    """Year 1 at +01:00 is a valid aware timestamp without a UTC instant: acknowledged, the router
    failed storing it on every attempt and the ticket was dead-lettered. Refused, naming the field."""
    name = _name("native")
    await intake.add_source(name, "native", SECRET)
    auth = {"Authorization": basic("x", SECRET)}
    for said, value in (
        ("created_at", "0001-01-01T00:00:00+01:00"),
        ("updated_at", "9999-12-31T23:59:59-01:00"),
    ):
        body = json.dumps({"external_id": "far-off", said: value}).encode()
        answer = await _post(intake, name, body, auth)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text
        assert answer.json()["errors"][0]["field"] == f"/{said}"


async def test_unsigned_requests_do_not_use_up_a_sources_rate_limit(
    settings_kwargs: dict[str, object], database_url: str
) -> None:
    """The bucket was taken before the signature was checked: anyone who knew a source's name (its
    webhook URL) could send unsigned junk and have the vendor's own deliveries refused with 429 (a
    GitHub delivery is not retried). Only signed requests count now; they are still limited."""
    async with running_intake(
        database_url=database_url, intake_rate_limit_per_s=0.01, intake_rate_limit_burst=2, **settings_kwargs
    ) as intake:
        name = _name("native")
        await intake.add_source(name, "native", SECRET)
        for _ in range(5):
            forged = await _post(
                intake, name, b'{"external_id": "junk"}', {"Authorization": basic("x", "nope")}
            )
            assert forged.status_code == 401
        auth = {"Authorization": basic("x", SECRET)}
        statuses = [
            (await _post(intake, name, json.dumps({"external_id": f"signed-{i}"}).encode(), auth)).status_code
            for i in range(3)
        ]
        assert statuses == [202, 202, 429]


async def test_more_deliveries_in_flight_than_pooled_connections_are_all_accepted_once(
    intake: Intake,
) -> None:
    """Each delivery held a pooled connection in its open transaction while the broker answered,
    then asked for one more (the outbox check): with the pool (10 + 10 on PostgreSQL) taken, every
    request waited the pool's 30 s timeout. Now none holds one meanwhile."""
    name = _name("native")
    await intake.add_source(name, "native", SECRET)
    auth = {"Authorization": basic("native", SECRET)}
    bodies = [json.dumps({"external_id": f"flood-{n}"}).encode() for n in range(60)]
    answers = await asyncio.gather(*(_post(intake, name, body, auth) for n, body in enumerate(bodies)))
    assert [a.status_code for a in answers] == [202] * 60, [a.text for a in answers if a.status_code != 202][
        :2
    ]
    again = await asyncio.gather(*(_post(intake, name, body, auth) for n, body in enumerate(bodies[:5])))
    assert all(a.status_code == 200 and a.json()["duplicate"] for a in again)
    events = await read_topic(
        intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 60
    )
    assert sorted(e.ticket().external_id for e in events) == sorted(f"flood-{n}" for n in range(60))


async def test_copies_of_one_delivery_racing_into_one_replica_are_published_once(intake: Intake) -> None:
    name = _name("native")
    await intake.add_source(name, "native", SECRET)
    auth = {"Authorization": basic("native", SECRET)}
    body = json.dumps({"external_id": "raced"}).encode()  # one body: one delivery id (its hash)
    answers = await asyncio.gather(*(_post(intake, name, body, auth) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [202]
    assert len({a.json()["event_ids"][0] for a in answers}) == 1
    settings = intake.settings
    events = await read_topic(settings.kafka_bootstrap_servers, settings.topic_ticket_events, 1)
    assert [e.ticket().external_id for e in events] == ["raced"]


async def test_a_webhook_url_pasted_with_a_trailing_slash_is_delivered(intake: Intake) -> None:
    name = _name("native")
    await intake.add_source(name, "native", SECRET)
    auth = {"Authorization": basic("native", SECRET)}
    answer = await _post(intake, f"{name}/", json.dumps({"external_id": "slash"}).encode(), auth)
    assert answer.status_code == 202, answer.text
    settings = intake.settings
    events = await read_topic(settings.kafka_bootstrap_servers, settings.topic_ticket_events, 1)
    assert [(e.source, e.ticket().external_id) for e in events] == [(name, "slash")]


async def test_a_source_name_with_u0000_is_not_found(intake: Intake) -> None:
    answer = await _post(intake, "gh%00x", b"{}", {})
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM


async def test_an_accepted_delivery_is_encoded_once(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    # The size check encodes the event; the producer sends those bytes, not a second encoding.
    encodings: list[bytes] = []
    to_bytes = EventEnvelope.to_bytes

    def counted(envelope: EventEnvelope) -> bytes:
        encodings.append(to_bytes(envelope))
        return encodings[-1]

    monkeypatch.setattr(EventEnvelope, "to_bytes", counted)
    name = _name("native")
    await intake.add_source(name, "native", SECRET)
    auth = {"Authorization": basic("native", SECRET)}
    answer = await _post(intake, name, json.dumps({"external_id": "once", "subject": "é"}).encode(), auth)
    assert answer.status_code == 202, answer.text
    assert len(encodings) == 1
    settings = intake.settings
    events = await read_topic(settings.kafka_bootstrap_servers, settings.topic_ticket_events, 1)
    assert [str(e.event_id) for e in events] == answer.json()["event_ids"]
    assert to_bytes(events[0]) == encodings[0]  # what was sent is what was checked
