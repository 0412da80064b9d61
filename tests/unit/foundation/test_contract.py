import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from shared.events import (
    EventEnvelope,
    EventType,
    Priority,
    RoutingPayload,
    SlaState,
    TicketSnapshot,
    TicketState,
    TicketStatus,
    derived_event_id,
    outgoing_routing_event,
    parse_priority,
    routing_event,
    ticket_event,
    ticket_key,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_event_bytes_are_the_json_of_the_events_fields():
    snapshot = TicketSnapshot(
        external_id="42",
        subject="Systemausfall – größte Störung ✓ \u2028",
        custom_fields={"ratio": 0.1 + 0.2, "big": 2**70, "nested": [{"a": None}], "flag": True},
        updated_at=datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    created = ticket_event(EventType.TICKET_CREATED, "zendesk", snapshot, occurred_at=NOW)
    state = TicketState(
        ticket_key=created.ticket_key, source="zendesk", status=TicketStatus.OPEN, team="access",
        priority=Priority.P2, category_confidence=0.8732, created_at=NOW,
    )  # fmt: skip
    routed = routing_event(EventType.TICKET_ROUTED, RoutingPayload(state=state), NOW, created.event_id)
    for envelope in (created, routed):
        raw = envelope.to_bytes()
        assert orjson.loads(raw) == orjson.loads(json.dumps(envelope.model_dump(mode="json")))
        assert EventEnvelope.from_bytes(raw) == envelope
    assert b'"updated_at":"2026-03-01T14:00:00.123456+02:00"' in created.to_bytes()


def test_ticket_event_round_trips_as_json_keyed_by_ticket():
    snapshot = TicketSnapshot(external_id="42", subject="VPN", tags=[" VPN ", "vpn", "Urgent"])
    envelope = ticket_event(EventType.TICKET_CREATED, "zendesk", snapshot, occurred_at=NOW)
    raw = envelope.to_bytes()
    decoded = EventEnvelope.from_bytes(raw)
    assert decoded == envelope
    assert decoded.ticket_key == "zendesk:42" == ticket_key("zendesk", "42")
    assert decoded.schema_version == 1
    assert decoded.ticket().tags == ["vpn", "urgent"]  # normalised and deduplicated
    # decode also gives the snapshot its validation produced, for a consumer to reuse.
    again, ticket = EventEnvelope.decode(raw)
    assert again == envelope and ticket == decoded.ticket() == snapshot
    body = orjson.loads(raw)
    assert set(body) == {
        "event_id",
        "type",
        "schema_version",
        "ticket_key",
        "occurred_at",
        "produced_at",
        "source",
        "payload",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        b'{"event_id": "x"}',
        # unknown schema version
        orjson.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "type": "ticket.created",
                "schema_version": 2,
                "ticket_key": "a:1",
                "occurred_at": NOW.isoformat(),
                "source": "a",
                "payload": {"external_id": "1"},
            }
        ),
        # valid envelope, payload invalid for its type
        orjson.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "type": "ticket.created",
                "schema_version": 1,
                "ticket_key": "a:1",
                "occurred_at": NOW.isoformat(),
                "source": "a",
                "payload": {"subject": "no external id"},
            }
        ),
        orjson.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "type": "ticket.routed",
                "schema_version": 1,
                "ticket_key": "a:1",
                "occurred_at": NOW.isoformat(),
                "source": "a",
                "payload": {"state": {"ticket_key": "a:1"}},
            }
        ),
    ],
)
def test_poison_messages_are_rejected_at_decode(raw):
    with pytest.raises((ValueError, ValidationError)):
        EventEnvelope.from_bytes(raw)


def test_u0000_in_a_vendors_ticket_is_read_as_the_replacement_character():
    # PostgreSQL stores U+0000 neither in text nor in JSONB: kept, the router would fail on the
    # event for good and dead-letter a ticket intake had acknowledged.
    snapshot = TicketSnapshot(
        external_id="1",
        subject="VPN \x00 down",
        custom_fields={"k\x00": ["v\x00", {"n": 2**70}]},
        comment={"body": "\x00"},
    )
    raw = ticket_event(EventType.TICKET_CREATED, "jira", snapshot, occurred_at=NOW).to_bytes()
    assert b"\\u0000" in raw
    _, ticket = EventEnvelope.decode(raw)
    assert ticket is not None and ticket.subject == "VPN \ufffd down"
    assert ticket.custom_fields == {"k\ufffd": ["v\ufffd", {"n": 2**70}]}
    assert ticket.comment is not None and ticket.comment.body == "\ufffd"
    # An escaped backslash before "u0000" is no NUL, and stays as it was.
    literal = ticket_event(
        EventType.TICKET_CREATED,
        "jira",
        TicketSnapshot(external_id="2", subject="C:\\u0000"),
        occurred_at=NOW,
    )
    assert EventEnvelope.from_bytes(literal.to_bytes()).payload["subject"] == "C:\\u0000"


def test_routing_event_ids_are_derived_from_their_cause():
    cause = uuid.uuid4()
    state = TicketState(
        ticket_key="a:1", source="a", status=TicketStatus.OPEN, team="x", priority=Priority.P3, created_at=NOW
    )
    payload = RoutingPayload(state=state, caused_by=cause)
    first = routing_event(EventType.TICKET_ROUTED, payload, NOW, cause)
    again = routing_event(EventType.TICKET_ROUTED, payload, NOW, cause)
    other_kind = routing_event(EventType.TICKET_RESOLVED, payload, NOW, cause)
    assert first.event_id == again.event_id == derived_event_id(str(cause), "ticket.routed")
    assert other_kind.event_id != first.event_id
    assert EventEnvelope.from_bytes(first.to_bytes()).routing().state.team == "x"
    assert EventEnvelope.decode(first.to_bytes()) == (first, None)  # no ticket snapshot in a routing event
    # The same version-5 UUIDs as the standard library's (stored ids must never change).
    for parts in [(str(cause), "ticket.routed"), ("x", "", "sla.warning"), ("ünïcode", "é")]:
        assert derived_event_id(*parts) == uuid.uuid5(
            uuid.UUID("6f1d8e0a-8a43-4f7e-9d3e-2f4b1c0e7a55"), "|".join(parts)
        )


def test_an_outgoing_routing_event_is_written_as_the_routing_event_is():
    cause = uuid.uuid4()
    state = TicketState(
        ticket_key="a:1",
        source="a",
        status=TicketStatus.OPEN,
        team="x",
        priority=Priority.P2,
        category="access",
        category_confidence=0.8125,
        language="de",
        created_at=NOW,
        routed_at=NOW,
        sla=SlaState(policy="gold", first_response_due=NOW, resolution_due=NOW),
    )
    payload = RoutingPayload(
        state=state, previous_team="y", rule="r1", ruleset_version=7, reasons=["a", "ü"], caused_by=cause
    )
    for kind in (EventType.TICKET_ROUTED, EventType.SLA_WARNING):
        plain = routing_event(kind, payload, NOW, cause)
        outgoing = outgoing_routing_event(kind, payload, NOW, cause).model_copy(
            update={"produced_at": plain.produced_at}
        )
        assert outgoing.to_bytes() == plain.to_bytes()
        assert EventEnvelope.decode(outgoing.to_bytes()) == (plain, None)
        # The cause given as text (the router's batch has it so): the same event.
        assert outgoing_routing_event(kind, payload, NOW, str(cause)).event_id == plain.event_id


def test_history_import_is_written_only_when_true():
    """A consumer older than the field refuses it (the contract forbids unknown fields): every other
    decision's events leave it out, and an event without it reads as no import."""
    state = TicketState(
        ticket_key="a:1", source="a", status=TicketStatus.OPEN, team="x", priority=Priority.P3,
        created_at=NOW,
    )  # fmt: skip
    live = routing_event(EventType.TICKET_ROUTED, RoutingPayload(state=state), NOW, uuid.uuid4())
    assert b"history_import" not in live.to_bytes()
    assert EventEnvelope.from_bytes(live.to_bytes()).routing().history_import is False
    payload = RoutingPayload(state=state, history_import=True)
    imported = outgoing_routing_event(EventType.TICKET_ROUTED, payload, NOW, uuid.uuid4())
    assert b'"history_import":true' in imported.to_bytes()
    assert EventEnvelope.from_bytes(imported.to_bytes()).routing().history_import is True


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("urgent", Priority.P1),
        ("P2", Priority.P2),
        ("Normal", Priority.P3),
        ("low", Priority.P4),
        (None, None),
    ],
)
def test_priority_words(word, expected):
    assert parse_priority(word) == expected


def test_unknown_priority_names_the_value():
    with pytest.raises(ValueError, match="'sometime'"):
        parse_priority("sometime")


def test_status_resolution():
    assert TicketStatus.SOLVED.is_resolved and TicketStatus.CLOSED.is_resolved
    assert not TicketStatus.PENDING.is_resolved


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "0001-01-01T00:00:00+14:00"),
        ("updated_at", "9999-12-31T23:59:59-14:00"),
        ("occurred_at", "0001-01-01T01:00:00+02:00"),
    ],
)
def test_a_time_without_a_utc_instant_is_poison_at_decode(field, value):
    """Decoded, the router failed storing the ticket (OverflowError converting it to UTC) on every
    attempt: the partition waited out the retries before the event was dead-lettered."""
    body = orjson.loads(
        ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id="1"), NOW).to_bytes()
    )
    (body if field == "occurred_at" else body["payload"])[field] = value
    with pytest.raises(ValidationError, match="outside the range of UTC datetimes"):
        EventEnvelope.decode(orjson.dumps(body))


@pytest.mark.parametrize(
    ("field", "value"),
    [("ticket_key", "api:2"), ("source", "zendesk"), ("external_id", "2")],
)
def test_a_ticket_event_whose_key_is_not_its_source_and_id_is_poison_at_decode(field, value):
    """The router stored such a ticket under its key and wrote its decisions back to the payload's
    external_id in the envelope's source: to another ticket of the helpdesk."""
    body = orjson.loads(
        ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id="1"), NOW).to_bytes()
    )
    (body["payload"] if field == "external_id" else body)[field] = value
    with pytest.raises(ValueError, match="is not source:external_id"):
        EventEnvelope.decode(orjson.dumps(body))
    # A key whose source part holds a colon is still its source and id.
    colon = ticket_event(EventType.TICKET_CREATED, "a:b", TicketSnapshot(external_id="c:d"), NOW)
    assert EventEnvelope.decode(colon.to_bytes())[0].ticket_key == "a:b:c:d"
