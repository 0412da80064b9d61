"""Payloads built to hurt: each is refused with a 422 naming its field, or read in time linear in
its size, never a 500 or a blocked event loop; and plain-text fields are not read as HTML."""

from __future__ import annotations

import json
import sys
import time

import orjson
import pytest

from services.intake.sources.schemas import SourceCreate
from services.intake.tickets.schemas import TicketIn
from services.intake.webhooks import MalformedBodyError, UnmappableError, WebhookRequest, adapt
from services.intake.webhooks.common import html_to_text, parse_datetime, parse_json_object, pointer_get
from services.intake.webhooks.jira import ADF_MAX_DEPTH, adf_to_text
from shared.events import EventType, ticket_event

from ._helpers import NOW, config


@pytest.mark.parametrize("stamp", ["²", "9" * 400, "9" * 5_000])
def test_a_timestamp_of_digits_no_clock_can_hold_is_refused_naming_its_field(stamp: str) -> None:
    with pytest.raises(UnmappableError) as raised:
        parse_datetime(stamp, "/issue/created_at")
    assert raised.value.field == "/issue/created_at"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("20240419", "2024-04-19T00:00:00+00:00"),  # ISO 8601's basic date, not 1970-08-23
        ("1713514500", "2024-04-19T08:15:00+00:00"),  # Unix seconds
        ("1713514500000", "2024-04-19T08:15:00+00:00"),  # and milliseconds
    ],
)
def test_a_timestamp_of_digits_is_a_basic_date_or_unix_time(stamp: str, expected: str) -> None:
    parsed = parse_datetime(stamp, "/created_at")
    assert parsed is not None and parsed.isoformat() == expected
    with pytest.raises(UnmappableError) as raised:
        parse_datetime("20241319", "/created_at")  # no month 13
    assert raised.value.field == "/created_at"


def test_malformed_html_is_read_in_linear_time() -> None:
    """html.parser took 12 s of the event loop for 36 KB of "<x " (quadratic, CVE-2025-6069); the
    bound here is a hundred times what a linear reading of 400 KB takes."""
    hostile = "<x " * 130_000 + "<p>the end</p>"
    started = time.process_time()
    text = html_to_text(hostile)
    assert time.process_time() - started < 2.0
    assert text.endswith("the end")


def test_html_to_text_keeps_the_text_and_the_line_breaks() -> None:
    html = "<div>Hello&nbsp;<b>Ann</b>,</div><p>line two &amp; more</p>a < b<br/>c"
    assert html_to_text(html) == "Hello Ann,\nline two & more\na < b\nc"


def test_html_to_text_keeps_words_of_adjacent_blocks_and_cells_apart() -> None:
    # HTML mail (Zammad, Freshdesk) lays out in tables, its tags often with no white space between.
    table = "<table><tr><td>Order</td><td>5521</td></tr><tr><th>State</th><TD>broken</TD></tr></table>"
    assert html_to_text(table) == "Order 5521\nState broken"
    assert html_to_text("<h5>Title</h5>Body<hr>end<dl><dt>Name</dt><dd>Ann</dd></dl>") == (
        "Title\nBody\nend\nName\nAnn"
    )
    assert html_to_text("<b>bold</b><i>italic</i>") == "bolditalic"  # inline elements join, as shown


def test_a_description_nested_past_any_editors_depth_is_cut_not_a_crash() -> None:
    node: dict[str, object] = {"type": "text", "text": "deep"}
    for _ in range(ADF_MAX_DEPTH * 5):
        node = {"type": "paragraph", "content": [node]}
    document = {
        "type": "doc",
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "top"}]}, node],
    }
    assert adf_to_text(document).startswith("top")


def test_an_intercom_title_is_plain_text() -> None:
    payload = {
        "type": "notification_event",
        "id": "notif_2",
        "topic": "conversation.user.created",
        "data": {
            "item": {
                "type": "conversation",
                "id": "8",
                "state": "open",
                "title": "Export fails when a<b and c>d",
                "source": {"body": "<p>Export <b>fails</b></p>"},
            }
        },
    }
    request = WebhookRequest(headers={}, body=json.dumps(payload).encode())
    snapshot = adapt(config("intercom"), request, NOW)[0].snapshot
    assert snapshot.subject == "Export fails when a<b and c>d"
    assert snapshot.description == "Export fails"  # the message body is HTML


def test_a_status_update_by_the_api_keeps_what_it_does_not_say() -> None:
    """README's own example: created with tags, then `{"external_id": "4711", "status": "solved"}`.
    The router merges the event's payload onto what it stored: an absent field keeps its value."""
    created = TicketIn.model_validate({"external_id": "4711", "subject": "VPN", "tags": ["vpn"]})
    solved = TicketIn.model_validate({"external_id": "4711", "status": "solved"})
    stored = ticket_event(EventType.TICKET_CREATED, "api", created.snapshot()).payload
    update = ticket_event(EventType.TICKET_STATUS_CHANGED, "api", solved.snapshot()).payload
    merged = {**stored, **update}
    assert merged["tags"] == ["vpn"] and merged["subject"] == "VPN" and merged["status"] == "solved"
    priority_only = TicketIn.model_validate({"external_id": "4711", "priority": "low"})
    assert "status" not in ticket_event(EventType.TICKET_CREATED, "api", priority_only.snapshot()).payload
    cleared = TicketIn.model_validate({"external_id": "4711", "tags": []})
    assert ticket_event(EventType.TICKET_CREATED, "api", cleared.snapshot()).payload["tags"] == []


@pytest.mark.parametrize("secret", [" leading-space", "trailing-space ", "newline-at-end\n"])
def test_a_secret_with_white_space_at_an_end_is_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        SourceCreate.model_validate({"name": "fd", "type": "freshdesk", "secret": secret})


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "12345678901234567890123", "n": 1}',  # a long run of digits in a string
        b'{"x": 0.12345678901234567890123, "y": -1.5e300, "z": [1, true, null, "\\u00e9"]}',
        b'{"big": 18446744073709551615, "small": -9223372036854775808}',  # orjson's own bounds
    ],
)
def test_a_body_read_again_exactly_reads_as_orjson_reads_it(body: bytes) -> None:
    assert parse_json_object(body) == orjson.loads(body)


def test_a_body_too_deep_to_read_again_exactly_is_malformed_not_a_crash() -> None:
    depth = 1020  # orjson reads it; the standard library's recursion limit (1,000 by default) does not
    body = b'{"a":' + b"[" * depth + b"12345678901234567890" + b"]" * depth + b"}"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the default: something in a full test run raises it
    try:
        with pytest.raises(MalformedBodyError):
            parse_json_object(body)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize("opener", ["<style>", "<!--", "<script x=1>"])
def test_unclosed_style_sheets_and_comments_are_read_in_linear_time(opener: str) -> None:
    hostile = ("text " + opener) * 60_000 + "<p>the end</p>"
    started = time.process_time()
    text = html_to_text(hostile)
    assert time.process_time() - started < 2.0
    assert text == "text"  # what follows an unclosed one is its content, as in a browser
    assert html_to_text(f"a{opener}b") == "a"


def test_a_utf8_byte_order_mark_before_the_json_is_skipped() -> None:
    # Senders on .NET (StreamWriter with Encoding.UTF8) or Windows PowerShell put a BOM before the
    # JSON; RFC 8259 lets a reader ignore it, and the standard library does. It was a 400, every time.
    generic = config("generic", mapping={"external_id": "/id", "subject": "/title"})
    body = "\ufeff".encode() + json.dumps({"id": 12345678901234567890123, "title": "Drucker läuft"}).encode()
    [event] = adapt(generic, WebhookRequest({}, body), NOW)
    assert (event.snapshot.external_id, event.snapshot.subject) == (
        "12345678901234567890123",
        "Drucker läuft",
    )


@pytest.mark.parametrize(
    "body",
    ['{"id": 1, "title": "Drucker läuft"}'.encode("latin-1"), '{"id": 1}'.encode("utf-16")],
)
def test_a_body_not_in_utf8_is_refused_saying_so(body: bytes) -> None:
    generic = config("generic", mapping={"external_id": "/id"})
    with pytest.raises(MalformedBodyError) as raised:
        adapt(generic, WebhookRequest({}, body), NOW)
    assert "UTF-8" in raised.value.message


def test_a_pointer_token_of_digits_that_are_not_ascii_finds_no_array_item() -> None:
    # A generic mapping "/labels/²" names a key "²" of an object; a sender's array there was
    # int("²"), a ValueError, and a 500 for every such delivery.
    assert pointer_get({"labels": ["a", "b"]}, "/labels/²") is None
    assert pointer_get({"labels": {"²": "a"}}, "/labels/²") == "a"
    generic = config("generic", mapping={"external_id": "/id", "subject": "/labels/²"})
    [event] = adapt(generic, WebhookRequest({}, b'{"id": 1, "labels": ["a", "b"]}'), NOW)
    assert event.snapshot.subject == ""
