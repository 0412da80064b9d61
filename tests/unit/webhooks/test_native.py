from __future__ import annotations

import json

import pytest

from services.intake.webhooks import MalformedBodyError, UnmappableError, WebhookRequest, adapt
from shared.events import EventType, Priority, TicketStatus

from ._helpers import NOW, adapt_one, config, fixture

CFG = config("native")


def test_creation() -> None:
    result = adapt_one(CFG, fixture("native", "ticket.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert snap.external_id == "WEB-2024-0001"
    assert (snap.status, snap.priority) == (TicketStatus.NEW, Priority.P2)
    assert snap.requester.organization == "Kunde GmbH"
    assert snap.tags == ["shipping", "address"]
    assert snap.custom_fields == {"order_id": "A-7731"}
    assert result.occurred_at.isoformat() == "2024-05-02T08:00:00+00:00"


def _body(**changes: object) -> bytes:
    data = json.loads(fixture("native", "ticket.json"))
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("status", "expected_type", "expected_status"),
    [
        ("solved", EventType.TICKET_STATUS_CHANGED, TicketStatus.SOLVED),
        ("closed", EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
        ("reopened", EventType.TICKET_STATUS_CHANGED, TicketStatus.OPEN),
        ("open", EventType.TICKET_STATUS_CHANGED, TicketStatus.OPEN),
        ("pending", EventType.TICKET_CREATED, TicketStatus.PENDING),
        ("on_hold", EventType.TICKET_CREATED, TicketStatus.ON_HOLD),
    ],
)
def test_status_words(status: str, expected_type: EventType, expected_status: TicketStatus) -> None:
    result = adapt_one(CFG, _body(status=status))
    assert (result.type, result.snapshot.status) == (expected_type, expected_status)


def test_comment() -> None:
    result = adapt_one(CFG, _body(comment={"body": "more info", "from_agent": False}))
    assert result.type is EventType.TICKET_COMMENTED


def test_integer_external_id() -> None:
    assert adapt_one(CFG, _body(external_id=42)).snapshot.external_id == "42"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"external_id": None}, "/external_id"),
        ({"priority": "asap"}, "/priority"),
        ({"status": "gone"}, "/status"),
        ({"colour": "red"}, "/colour"),
        ({"tags": "not-a-list"}, "/tags"),
        ({"requester": {"email": 5}}, "/requester/email"),
        ({"created_at": "yesterday"}, "/created_at"),
    ],
)
def test_unmappable(changes: dict[str, object], field: str) -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _body(**changes)), NOW)
    assert info.value.field == field


def test_malformed() -> None:
    with pytest.raises(MalformedBodyError):
        adapt(CFG, WebhookRequest({}, b"\xff\xfe"), NOW)


def test_an_integer_external_id_beyond_64_bits_is_read_exactly() -> None:
    number = 123456789012345678901234567890  # orjson reads it as 1.2345678901234568e+29
    assert adapt_one(CFG, _body(external_id=number)).snapshot.external_id == str(number)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**40])
def test_a_custom_field_integer_beyond_64_bits_is_refused_naming_it(number: int) -> None:
    """It was read as a float, a value the sender never sent. Read exactly, the router still could
    not keep it (its JSON columns are read by orjson): refused, as POST /v1/tickets does."""
    body = _body(custom_fields={"order_id": "A-1", "serials": [1, {"big": number}]})
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, body), NOW)
    assert info.value.field == "/custom_fields/serials/1/big"
    assert "64 bits" in info.value.reason


def test_custom_field_integers_at_64_bits_pass() -> None:
    fields = {"low": -(2**63), "high": 2**64 - 1, "text": "12345678901234567890123"}
    assert adapt_one(CFG, _body(custom_fields=fields)).snapshot.custom_fields == fields


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"external_id": "1", "a/b": 1}, "/a~1b"),
        ({"external_id": "1", "requester": {"x~y": 1}}, "/requester/x~0y"),
        ({"external_id": "1", "tags": ["ok", 5]}, "/tags/1"),
    ],
)
def test_the_field_at_fault_is_an_escaped_pointer(body: dict[str, object], pointer: str) -> None:
    # As POST /v1/tickets names it: "/a/b" pointed at a key "b" inside "a", which the body has not.
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, json.dumps(body).encode()), NOW)
    assert info.value.field == pointer
