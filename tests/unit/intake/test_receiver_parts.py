from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from starlette.requests import Request
from starlette.types import Message

from services.intake.receiver.limits import TokenBuckets, read_body
from services.intake.sources.service import InvalidSource, validate_options
from services.ticketctl.sources import parse_options
from shared.http.json_body import is_json_media_type
from shared.http.problems import Problem


def test_token_bucket_burst_then_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=0.0) == pytest.approx(0.5)
    assert buckets.take("b", now=0.0) == 0.0  # per key
    assert buckets.take("a", now=0.5) == 0.0  # one token back after 1/rate seconds
    assert buckets.take("a", now=0.5) > 0
    assert [buckets.take("a", now=100.0) for _ in range(4)].count(0.0) == 3  # never more than the burst


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        (None, False),
        ("application/jsonx", False),
        ("text/json+xml", False),
    ],
)
def test_json_media_types(content_type: str | None, ok: bool) -> None:
    assert is_json_media_type(content_type) is ok


def test_generic_options_error_points_at_the_field() -> None:
    with pytest.raises(InvalidSource) as caught:
        validate_options("generic", {"mapping": {"external_id": "/id", "colour": "/c"}})
    assert caught.value.field == "/options/mapping/colour"
    with pytest.raises(InvalidSource) as caught:
        validate_options("generic", {"mapping": {"external_id": "/id"}, "status_map": {"x": "limbo"}})
    assert caught.value.field == "/options/status_map/x"
    validate_options("zendesk", {"timestamp_tolerance": 60})
    for tolerance in (None, "5m", 0, 1e12, float("nan"), True):
        with pytest.raises(InvalidSource) as caught:
            validate_options("zendesk", {"timestamp_tolerance": tolerance})
        assert caught.value.field == "/options/timestamp_tolerance"


@pytest.mark.parametrize(
    ("adapter", "options", "field"),
    [
        (
            "jira",
            {"status_map": {"Waiting for support": "pendng"}},
            "/options/status_map/Waiting for support",
        ),
        ("zendesk", {"status_map": {"hold": None}}, "/options/status_map/hold"),
        ("freshdesk", {"priority_map": {"Sev1": "P0"}}, "/options/priority_map/Sev1"),
        ("native", {"priority_map": {"a/b": {"p": 1}}}, "/options/priority_map/a~1b"),
        ("zammad", {"trigger_events": {"Escalate": "ticket.exploded"}}, "/options/trigger_events/Escalate"),
        ("zammad", {"trigger_events": ["Escalate"]}, "/options/trigger_events"),
        # Generic's own check named no word with a space in it: /options.
        (
            "generic",
            {"mapping": {"external_id": "/id"}, "status_map": {"On hold": "held"}},
            "/options/status_map/On hold",
        ),
    ],
)
def test_word_tables_are_checked_for_every_adapter(
    adapter: str, options: dict[str, object], field: str
) -> None:
    """A word sent to no status, priority or event was stored for any adapter but generic, and every
    delivery carrying the word was then refused (422) instead of the source's configuration."""
    with pytest.raises(InvalidSource) as caught:
        validate_options(adapter, options)
    assert caught.value.field == field


def test_word_tables_that_map_to_known_words_are_accepted() -> None:
    validate_options(
        "jira", {"status_map": {"Waiting for support": "pending"}, "priority_map": {"Sev1": "P1"}}
    )
    validate_options("zendesk", {"priority_map": {"whenever": None}})  # no priority
    validate_options("zammad", {"trigger_events": {"Escalate": "updated", "Note": "ticket.commented"}})
    validate_options("github", {"trigger_events": ["ignored: zammad's option only"]})


def test_cli_options_nest_and_parse_json() -> None:
    assert parse_options(
        [
            "mapping.external_id=/ticket/id",
            "mapping.tags=$.tags[*]",
            "timestamp_tolerance=60",
            'status_map={"Waiting": "pending"}',
        ]
    ) == {
        "mapping": {"external_id": "/ticket/id", "tags": "$.tags[*]"},
        "timestamp_tolerance": 60,
        "status_map": {"Waiting": "pending"},
    }
    with pytest.raises(typer.BadParameter):
        parse_options(["no-equals-sign"])


async def test_a_client_gone_mid_body_is_a_client_error_not_a_500() -> None:
    """A sender that closed the connection halfway through its body made the raw routes raise
    Starlette's ClientDisconnect: a 500 with a traceback, counted by the 5xx alert."""
    messages: Iterator[Message] = iter(
        [
            {"type": "http.request", "body": b'{"external_id": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Message:
        return next(messages)

    request = Request({"type": "http", "method": "POST", "path": "/v1/tickets", "headers": []}, receive)
    with pytest.raises(Problem) as caught:
        await read_body(request, 1024)
    assert caught.value.status == 400
