from __future__ import annotations

import json

import pytest

from services.intake.webhooks import IgnoredEvent, UnmappableError, WebhookRequest, adapt
from shared.events import EventType, Priority, TicketStatus

from ._helpers import NOW, adapt_one, config, fixture

CFG = config("intercom", url_template="https://app.intercom.com/a/inbox/{app_id}/inbox/conversation/{id}")


def test_ticket_created() -> None:
    result = adapt_one(CFG, fixture("intercom", "ticket.created.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert snap.external_id == "415"
    assert snap.subject == "Export to CSV fails"
    assert snap.description == "Clicking Export shows a spinner forever."
    assert snap.status is TicketStatus.NEW
    assert snap.requester.email == "kim@client.example"
    assert snap.external_assignee_group == "5017691"
    assert snap.custom_fields == {"intercom_ticket_id": "36"}
    assert snap.url == "https://app.intercom.com/a/inbox/abc123xy/inbox/conversation/415"
    assert result.occurred_at.isoformat() == "2024-05-27T08:53:21+00:00"


def test_ticket_state_updated_legacy_string_state() -> None:
    result = adapt_one(CFG, fixture("intercom", "ticket.state.updated.json"))
    assert (result.type, result.snapshot.status) == (EventType.TICKET_STATUS_CHANGED, TicketStatus.PENDING)


def test_conversation_created() -> None:
    result = adapt_one(config("intercom"), fixture("intercom", "conversation.user.created.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert (snap.external_id, snap.status, snap.priority) == ("147", TicketStatus.OPEN, Priority.P3)
    assert snap.description == "Hi, my invoice shows the wrong VAT number.\nCan you fix it?"
    assert (snap.requester.email, snap.requester.name) == ("pat@buyer.example", "Pat Buyer")
    assert snap.tags == ["billing"]
    assert snap.channel == "customer_initiated"
    assert snap.url is None


def test_admin_reply_is_agent_comment() -> None:
    result = adapt_one(CFG, fixture("intercom", "conversation.admin.replied.json"))
    assert result.type is EventType.TICKET_COMMENTED
    assert result.snapshot.priority is Priority.P2
    comment = result.snapshot.comment
    assert comment is not None
    assert comment.body == "Sorry about that & thanks for flagging, a corrected invoice is on its way."
    assert (comment.author, comment.public, comment.from_agent) == ("riley@acme.example", True, True)


def test_admin_note_is_private() -> None:
    data = json.loads(fixture("intercom", "conversation.admin.replied.json"))
    data["topic"] = "conversation.admin.noted"
    data["data"]["item"]["conversation_parts"]["conversation_parts"][0]["part_type"] = "note"
    comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
    assert comment is not None and not comment.public


def test_conversation_closed() -> None:
    result = adapt_one(CFG, fixture("intercom", "conversation.admin.closed.json"))
    assert (result.type, result.snapshot.status) == (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED)
    assert result.snapshot.comment is None


def _ticket(state: object, topic: str = "ticket.state.updated", **item: object) -> bytes:
    data = json.loads(fixture("intercom", "ticket.state.updated.json"))
    data["topic"] = topic
    data["data"]["item"]["ticket_state"] = state
    data["data"]["item"].update(item)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("submitted", TicketStatus.NEW),
        ("in_progress", TicketStatus.OPEN),
        ("waiting_on_customer", TicketStatus.PENDING),
        ("resolved", TicketStatus.SOLVED),
        ({"id": "9", "category": "in_progress", "internal_label": "Investigating"}, TicketStatus.OPEN),
    ],
)
def test_ticket_states(state: object, expected: TicketStatus) -> None:
    assert adapt_one(CFG, _ticket(state)).snapshot.status is expected


def test_closed_ticket_without_state() -> None:
    assert adapt_one(CFG, _ticket(None, open=False)).snapshot.status is TicketStatus.CLOSED


@pytest.mark.parametrize(
    ("state", "expected"),
    [("open", TicketStatus.OPEN), ("snoozed", TicketStatus.PENDING), ("closed", TicketStatus.CLOSED)],
)
def test_conversation_states(state: str, expected: TicketStatus) -> None:
    data = json.loads(fixture("intercom", "conversation.admin.closed.json"))
    data["data"]["item"]["state"] = state
    assert adapt_one(CFG, json.dumps(data).encode()).snapshot.status is expected


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("ticket.admin.assigned", EventType.TICKET_REASSIGNED_EXTERNALLY),
        ("ticket.team.assigned", EventType.TICKET_REASSIGNED_EXTERNALLY),
        ("ticket.attribute.updated", EventType.TICKET_UPDATED),
        ("ticket.note.created", EventType.TICKET_COMMENTED),
    ],
)
def test_ticket_topics(topic: str, expected: EventType) -> None:
    assert adapt_one(CFG, _ticket("in_progress", topic=topic)).type is expected


@pytest.mark.parametrize("name", ["ping.json"])
def test_ping_ignored(name: str) -> None:
    with pytest.raises(IgnoredEvent):
        adapt(CFG, WebhookRequest({}, fixture("intercom", name)), NOW)


def test_contact_topic_ignored() -> None:
    with pytest.raises(IgnoredEvent):
        adapt(
            CFG,
            WebhookRequest(
                {}, b'{"type": "notification_event", "topic": "contact.user.created", "data": {}}'
            ),
            NOW,
        )


def test_unknown_state_names_field() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _ticket("teleported")), NOW)
    assert info.value.field == "/data/item/ticket_state"


def test_missing_item() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, b'{"topic": "ticket.created", "data": {}}'), NOW)
    assert info.value.field == "/data/item"
