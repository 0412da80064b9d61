from __future__ import annotations

import json
from typing import Any

import pytest

from services.intake.webhooks import UnmappableError, WebhookRequest, adapt, validate_generic_mapping
from shared.events import EventType, Priority, TicketStatus

from ._helpers import NOW, adapt_one, config, fixture

OPTIONS: dict[str, Any] = {
    "mapping": {
        "external_id": "/ticket/id",
        "subject": "/ticket/title",
        "description": "$.ticket.body",
        "status": "/ticket/state",
        "priority": "/ticket/severity",
        "requester_email": "/ticket/reporter/email",
        "requester_name": "$.ticket.reporter.name",
        "tags": "$.ticket.labels[*].name",
        "url": "/ticket/link",
        "created_at": "/ticket/opened_at",
        "event_type": "/event",
    },
    "status_map": {"Triggered": "open", "Acknowledged": "pending"},
    "priority_map": {"Sev1": "P1", "Sev2": "high"},
    "event_map": {"incident.triggered": "created"},
}


def test_pointer_and_jsonpath_mapping() -> None:
    result = adapt_one(config("generic", **OPTIONS), fixture("generic", "alert.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert snap.external_id == "9001"
    assert snap.subject == "Checkout latency above SLO"
    assert snap.description == "p95 latency 2.3s for 10 minutes in eu-west-1"
    assert (snap.status, snap.priority) == (TicketStatus.OPEN, Priority.P1)
    assert (snap.requester.email, snap.requester.name) == ("alerts@monitoring.example", "Monitoring")
    assert snap.tags == ["checkout", "latency"]
    assert snap.url == "https://monitoring.example/incidents/9001"
    assert snap.created_at is not None and snap.created_at.isoformat() == "2024-05-01T12:00:00+00:00"
    assert result.occurred_at == NOW  # nothing mapped to occurred_at/updated_at


def _body(**ticket: object) -> bytes:
    data = json.loads(fixture("generic", "alert.json"))
    data["ticket"].update(ticket)
    return json.dumps(data).encode()


def test_missing_required_field_names_expression() -> None:
    data = json.loads(fixture("generic", "alert.json"))
    del data["ticket"]["id"]
    with pytest.raises(UnmappableError) as info:
        adapt(config("generic", **OPTIONS), WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert info.value.field == "/ticket/id"


def test_jsonpath_required_field() -> None:
    options: dict[str, Any] = {"mapping": {"external_id": "$.ticket.number"}}
    with pytest.raises(UnmappableError) as info:
        adapt(config("generic", **options), WebhookRequest({}, fixture("generic", "alert.json")), NOW)
    assert info.value.field == "$.ticket.number"


def test_unknown_vendor_word_names_expression() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(config("generic", **OPTIONS), WebhookRequest({}, _body(state="Snoozing")), NOW)
    assert info.value.field == "/ticket/state"


def test_comment_mapping_and_string_tags() -> None:
    options: dict[str, Any] = {
        "mapping": {
            "external_id": "/id",
            "tags": "/tags",
            "comment_body": "/note/text",
            "comment_author": "/note/by",
            "comment_public": "/note/public",
            "comment_from_agent": "/note/staff",
            "occurred_at": "/at",
        }
    }
    body = json.dumps(
        {
            "id": 7,
            "tags": "a, b c",
            "at": 1700000000,
            "note": {"text": "hello", "by": "amy", "public": False, "staff": "true"},
        }
    ).encode()
    result = adapt_one(config("generic", **options), body)
    assert result.type is EventType.TICKET_COMMENTED
    assert result.snapshot.tags == ["a", "b", "c"]
    assert result.snapshot.comment is not None
    assert (
        result.snapshot.comment.author,
        result.snapshot.comment.public,
        result.snapshot.comment.from_agent,
    ) == ("amy", False, True)
    assert result.occurred_at.isoformat() == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({}, "mapping"),
        ({"mapping": {}}, "mapping"),
        ({"mapping": {"subject": "/title"}}, "mapping.external_id"),
        ({"mapping": {"external_id": "/id", "colour": "/c"}}, "mapping.colour"),
        ({"mapping": {"external_id": "ticket.id"}}, "mapping.external_id"),
        ({"mapping": {"external_id": 5}}, "mapping.external_id"),
        ({"mapping": {"external_id": "/id", "tags": "$.tags[[["}}, "mapping.tags"),
        ({"mapping": {"external_id": "/id"}, "status_map": {"Waiting": "snoozed"}}, "status_map.Waiting"),
        ({"mapping": {"external_id": "/id"}, "priority_map": {"Sev9": "whenever"}}, "priority_map.Sev9"),
        ({"mapping": {"external_id": "/id"}, "event_map": {"x": "exploded"}}, "event_map.x"),
        ({"mapping": {"external_id": "/id"}, "status_map": ["open"]}, "status_map"),
        ({"mapping": {"external_id": "/id"}, "auth_header": ""}, "auth_header"),
    ],
)
def test_validation_errors_name_the_key(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        validate_generic_mapping(options)


def test_valid_mapping_passes() -> None:
    validate_generic_mapping(OPTIONS)


def test_invalid_stored_mapping_is_unmappable_not_a_crash() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(config("generic", mapping={"subject": "/t"}), WebhookRequest({}, b"{}"), NOW)
    assert info.value.field == "options"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (123456789012345678901234567890, 123456789012345678901234567891),
        (18446744073709551616, 18446744073709551617),  # just past orjson's largest integer, 2**64 - 1
        (-9223372036854775809, -9223372036854775810),  # just past its smallest, -2**63
    ],
)
def test_integers_beyond_64_bits_are_read_exactly(first: int, second: int) -> None:
    """orjson reads an integer beyond 64 bits as a float: two tickets whose ids differ only past a
    double's 17 digits got one key (and a tag or an id its float spelling, "1.2345678901234568e+29")."""
    cfg = config("generic", mapping={"external_id": "/ticket/id", "tags": "$.ticket.labels[*]"})
    ids = []
    for number in (first, second):
        body = json.dumps({"ticket": {"id": number, "labels": [number, "x"]}}).encode()
        snap = adapt_one(cfg, body).snapshot
        assert snap.external_id == str(number)
        assert snap.tags == [str(number), "x"]
        ids.append(snap.external_id)
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    "expression", ["$.ticket.labels[*].name", "$.ticket.names[*]", "/ticket/names", "$.ticket.names"]
)
def test_a_label_in_an_array_is_one_tag_however_it_is_reached(expression: str) -> None:
    # A string a JSONPath found in an array was split on spaces like a delimited list, so the label
    # "needs review" became two tags, where the pointer to the same array kept it whole.
    cfg = config("generic", mapping={"external_id": "/ticket/id", "tags": expression})
    labels = [{"name": "needs review"}, {"name": "Billing"}]
    body = json.dumps({"ticket": {"id": 1, "labels": labels, "names": ["needs review", "Billing"]}})
    assert adapt_one(cfg, body.encode()).snapshot.tags == ["needs review", "billing"]


@pytest.mark.parametrize("expression", ["/ticket/tags", "$.ticket.tags"])
def test_a_string_of_tags_outside_an_array_is_split(expression: str) -> None:
    cfg = config("generic", mapping={"external_id": "/ticket/id", "tags": expression})
    body = json.dumps({"ticket": {"id": 1, "tags": "vip, login locked"}}).encode()
    assert adapt_one(cfg, body).snapshot.tags == ["vip", "login", "locked"]


@pytest.mark.parametrize(
    ("field", "expression", "value"),
    [
        ("subject", "$.ticket.title.`sub(/Checkout/, Cart)`", 404),  # sub takes strings only
        ("subject", "$.ticket.title.`sub(/Checkout/, Cart)`", None),
        ("tags", "$.ticket.labels.`sorted`", [1, "a"]),  # sorted compares the items
    ],
)
def test_a_jsonpath_extension_the_payload_does_not_fit_is_a_422_naming_it(
    field: str, expression: str, value: object
) -> None:
    # jsonpath-ng's extensions assume their input's type: a number or a null where the admin
    # expected a string was a TypeError, a 500 for every such delivery (the sender retries them).
    options: dict[str, Any] = {"mapping": {"external_id": "/ticket/id", field: expression}}
    validate_generic_mapping(options)  # accepted when the source is configured
    cfg = config("generic", **options)
    key = "title" if field == "subject" else "labels"
    with pytest.raises(UnmappableError) as info:
        adapt(cfg, WebhookRequest({}, _body(**{key: value})), NOW)
    assert info.value.field == expression
    fitting = adapt_one(cfg, _body(title="Checkout slow", labels=["b", "a"])).snapshot
    assert fitting.subject == "Cart slow" if field == "subject" else fitting.tags == ["a", "b"]
