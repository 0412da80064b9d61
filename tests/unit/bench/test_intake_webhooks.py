"""The intake bench's webhook mode: what the load generator sends is a valid, signed, new delivery
that intake adapts into a new ticket; the bare baseline produces the event intake would; and the
verdicts count failures."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import pytest

from bench.bench_intake import failures, turn_order, verdict
from bench.harness.bare_intake import create_app
from bench.harness.loadgen import Run
from bench.harness.webhooks import (
    SOURCES,
    github_external_id,
    parse_request,
    ticket_key_of,
    ticket_request,
    webhook_request,
)
from services.intake.receiver.endpoints import _bounded_delivery_id
from services.intake.tickets.schemas import TicketIn
from services.intake.webhooks import (
    SignatureError,
    WebhookRequest,
    adapt,
    delivery_id,
    to_envelopes,
    verify_signature,
)
from shared.events import EventEnvelope, EventType, ticket_event, utc_now
from shared.settings import IntakeSettings

SECRET = "bench-secret-0123456789"
PREFIX = "bench-1a2b3c4d"


def received(mode: str, index: int, secret: str = SECRET, prefix: str = PREFIX) -> tuple[str, WebhookRequest]:
    path, headers, body = parse_request(webhook_request(mode, "127.0.0.1", 8000, secret, prefix)(index))
    return path, WebhookRequest(headers=headers, body=body)


def test_a_github_delivery_verifies_and_adapts_to_a_new_ticket() -> None:
    config = SOURCES["github"].config(SECRET)
    for index in (0, 1, 12_345):
        path, request = received("github", index)
        assert path == "/v1/webhooks/bench-github"
        assert request.header("Content-Type") == "application/json"
        assert request.header("X-GitHub-Event") == "issues"
        verify_signature(config, request, utc_now())  # raises unless the HMAC covers the exact body
        [event] = adapt(config, request)
        assert event.type is EventType.TICKET_CREATED
        assert event.snapshot.external_id == github_external_id(PREFIX, index)
        assert event.snapshot.external_id == f"Codertocat/Hello-World-{PREFIX}#{index + 1}"
        assert event.snapshot.url == f"https://github.com/Codertocat/Hello-World-{PREFIX}/issues/{index + 1}"
        assert event.snapshot.subject == "Spelling error in the README file"
        assert len(request.body) > 10_000  # the real payload's size, not a stub


def test_a_delivery_under_another_secret_is_refused() -> None:
    _, request = received("github", 7, secret="not-the-source-secret")
    with pytest.raises(SignatureError):
        verify_signature(SOURCES["github"].config(SECRET), request, utc_now())


@pytest.mark.parametrize("mode", ["github", "native"])
def test_delivery_and_external_ids_are_new_for_every_request_and_every_run(mode: str) -> None:
    config = SOURCES[mode].config(SECRET)
    seen_deliveries, seen_tickets = set(), set()
    for prefix in (PREFIX, "bench-99999999"):
        for index in range(300):
            _, request = received(mode, index, prefix=prefix)
            delivery = delivery_id(config, request)
            assert not delivery.startswith("sha256:")  # the vendor's id, not the body hash
            seen_deliveries.add(delivery)
            seen_tickets.add(adapt(config, request)[0].snapshot.external_id)
    assert len(seen_deliveries) == len(seen_tickets) == 600


def test_github_delivery_ids_look_like_githubs() -> None:
    _, request = received("github", 255)
    vendor = request.header("X-GitHub-Delivery") or ""
    assert [len(part) for part in vendor.split("-")] == [8, 4, 4, 4, 12]
    assert vendor.endswith("0000000000ff")


def test_a_native_delivery_verifies_and_adapts() -> None:
    config = SOURCES["native"].config(SECRET)
    _, request = received("native", 41)
    verify_signature(config, request, utc_now())
    assert delivery_id(config, request) == f"native:{request.header('X-Delivery-Id')}"
    [event] = adapt(config, request)
    assert event.type is EventType.TICKET_CREATED
    assert event.snapshot.external_id == f"{PREFIX}-41"


def test_the_tickets_request_is_a_valid_ticket() -> None:
    path, headers, body = parse_request(ticket_request("127.0.0.1", 8000, "/v1/tickets", "tok", PREFIX)(5))
    assert path == "/v1/tickets" and headers["Authorization"] == "Bearer tok"
    assert TicketIn.model_validate_json(body).external_id == f"{PREFIX}-5"


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value, key))


async def test_the_bare_webhook_route_produces_the_event_intake_would() -> None:
    settings = IntakeSettings()
    app = create_app(settings)
    app.state.producer = producer = Producer()  # no lifespan: no broker
    path, headers, body = parse_request(webhook_request("github", "127.0.0.1", 8000, SECRET, PREFIX)(3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bare") as client:
        answer = await client.post(path, content=body, headers=headers)
    assert answer.status_code == 202
    [(topic, value, key)] = producer.sent
    # What intake's endpoint does with the source from its database (same name, adapter, options).
    config = SOURCES["github"].config(SECRET)
    request = WebhookRequest(headers=headers, body=body)
    delivery = _bounded_delivery_id(delivery_id(config, request))
    [expected] = to_envelopes(config, delivery, adapt(config, request))
    produced = EventEnvelope.from_bytes(value)
    assert topic == settings.topic_ticket_events and key == expected.ticket_key.encode()
    ignore = {"produced_at"}
    assert produced.model_dump(exclude=ignore) == expected.model_dump(exclude=ignore)
    assert produced.ticket_key == f"bench-github:Codertocat/Hello-World-{PREFIX}#4"


@pytest.mark.parametrize("mode", ["github", "native"])
def test_the_key_the_e2e_bench_matches_is_the_key_intake_gives(mode: str) -> None:
    """The end-to-end bench attributes a ticket to the partition of the key it computes for it."""
    config = SOURCES[mode].config(SECRET)
    for index in (0, 41):
        _, request = received(mode, index)
        [envelope] = to_envelopes(config, delivery_id(config, request), adapt(config, request))
        assert ticket_key_of(mode, PREFIX, index) == envelope.ticket_key


def test_the_key_of_a_native_ticket_is_under_source_api() -> None:
    _, _, body = parse_request(ticket_request("127.0.0.1", 8000, "/v1/tickets", "tok", PREFIX)(9))
    ticket = TicketIn.model_validate_json(body)
    envelope = ticket_event(EventType.TICKET_CREATED, ticket.source, ticket.snapshot())
    assert ticket_key_of(None, PREFIX, 9) == envelope.ticket_key


def result(rate: float, p99: float | None, measured: dict[str, int], **kw: Any) -> dict[str, Any]:
    return {"ok_per_second": rate, "latency_ms_p99": p99, "statuses_measured": measured, **kw}


def test_failures_are_non_2xx_answers_and_transport_errors() -> None:
    statuses = {"202": 900, "200": 3, "429": 2, "503": 1, "ConnectionResetError": 4, "TimeoutError": 0}
    assert failures(statuses) == {"429": 2, "503": 1, "ConnectionResetError": 4}


def test_the_verdict_is_met_only_without_failures() -> None:
    bare = result(3000, 10, {"202": 9000})
    clean = verdict(result(2600, 20, {"202": 7800}), bare)
    assert clean.met and clean.failed == 0 and clean.ratio == pytest.approx(2600 / 3000)
    # Fast enough and a good ratio, but one answer in the measured window was a 503.
    failed = verdict(result(2600, 20, {"202": 7800, "503": 1}), bare)
    assert failed.failed == 1
    assert not failed.rate_met and not failed.p99_met and not failed.ratio_met and not failed.met
    dropped = verdict(result(2600, 20, {"202": 7800, "ConnectionResetError": 2}), bare)
    assert dropped.failed == 2 and not dropped.met


def test_a_failing_baseline_fails_the_ratio_only() -> None:
    v = verdict(result(2600, 20, {"202": 7800}), result(3000, 10, {"202": 9000, "500": 5}))
    assert v.baseline_failed == 5
    assert v.rate_met and v.p99_met and not v.ratio_met and not v.met


def test_the_targets_still_apply_without_failures() -> None:
    bare = result(3000, 10, {"202": 9000})
    assert not verdict(result(1999, 20, {"202": 6000}), bare).rate_met
    assert not verdict(result(2600, 50, {"202": 7800}), bare).p99_met
    assert not verdict(result(2600, None, {"202": 7800}), bare).p99_met
    assert not verdict(result(2300, 20, {"202": 7800}), bare).ratio_met  # 0.77
    assert verdict(result(2300, 20, {"202": 7800}), result(0, None, {})).ratio is None


def test_the_turns_mirror_so_no_contender_runs_on_a_fuller_broker() -> None:
    assert (
        turn_order(("tickets",))
        == [
            ("tickets", "bare"),
            ("tickets", "intake"),
            ("tickets", "intake"),
            ("tickets", "bare"),
        ]
        * 2
    )
    order = turn_order(("tickets", "github", "native"))
    contenders = set(order)
    assert len(contenders) == 6
    means = {c: sum(i for i, turn in enumerate(order) if turn == c) / order.count(c) for c in contenders}
    assert len(set(means.values())) == 1
    assert {order.count(c) for c in contenders} == {4}


class Refused:
    async def request(self, raw: bytes) -> int:
        raise ConnectionResetError

    def close(self) -> None:
        pass


class Answers:
    def __init__(self, status: int) -> None:
        self.status = status

    async def request(self, raw: bytes) -> int:
        return self.status

    def close(self) -> None:
        pass


def test_the_loadgen_counts_what_fails_after_the_warm_up_whenever_it_was_sent() -> None:
    args = argparse.Namespace(
        webhook="github", host="127.0.0.1", port=1, secret=SECRET, prefix=PREFIX, timeout=1.0
    )
    run = Run(args)

    async def go() -> None:
        now = time.monotonic()
        run.measure_from = now + 3600  # still warming up
        await run.one(Refused(), 0, due=now)  # type: ignore[arg-type]
        await run.one(Answers(202), 1, due=now)  # type: ignore[arg-type]
        run.measure_from = now - 1  # measuring now
        # Sent in the warm-up, failed while measuring (a warm-up request that timed out, say).
        await run.one(Refused(), 2, due=now - 2)  # type: ignore[arg-type]
        await run.one(Answers(503), 3, due=now - 2)  # type: ignore[arg-type]
        await run.one(Answers(202), 4, due=now - 2)  # type: ignore[arg-type]
        await run.one(Answers(202), 5, due=now)  # type: ignore[arg-type]

    asyncio.run(go())
    assert run.statuses == {"ConnectionResetError": 2, "503": 1, "202": 3}
    assert run.measured_statuses == {"ConnectionResetError": 1, "503": 1, "202": 2}
    assert len(run.latencies) == 1  # only requests sent while measuring give latencies
