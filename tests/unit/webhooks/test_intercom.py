from __future__ import annotations

import json
from collections.abc import Mapping

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
    assert snap.channel == "conversation"  # the Messenger
    assert snap.url is None


@pytest.mark.parametrize("source_type", ["email", "whatsapp", "phone_call"])
def test_the_channel_is_the_source_type_not_who_started_the_conversation(source_type: str) -> None:
    # source.delivered_as says who started it (customer_initiated, admin_initiated, automated...),
    # source.type where (conversation, email, whatsapp...): every conversation a customer started had
    # channel "customer_initiated", so a rule on "channel equals email" never matched.
    data = json.loads(fixture("intercom", "conversation.user.created.json"))
    data["data"]["item"]["source"]["type"] = source_type
    assert adapt_one(CFG, json.dumps(data).encode()).snapshot.channel == source_type
    del data["data"]["item"]["source"]["type"]
    assert adapt_one(CFG, json.dumps(data).encode()).snapshot.channel == "intercom"


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


def _ticket_part_event(topic: str, part: Mapping[str, object], **ticket_changes: object) -> bytes:
    """A ticket's reply or note topic as Intercom sends it: the ticket and the new part, wrapped."""
    created = json.loads(fixture("intercom", "ticket.created.json"))
    ticket = {**created["data"]["item"], **ticket_changes}
    created["topic"] = topic
    created["data"]["item"] = {"type": "ticket_ticket_part", "ticket": ticket, "ticket_part": part}
    return json.dumps(created).encode()


def test_a_reply_or_note_on_a_ticket_is_a_comment_of_that_ticket() -> None:
    # Read as the ticket itself (no /data/item/id), every reply and note was refused with a 422.
    reply = {"type": "ticket_part", "part_type": "comment", "body": "<p>Still failing</p>",
             "author": {"type": "user", "email": "kim@client.example"}}  # fmt: skip
    result = adapt_one(CFG, _ticket_part_event("ticket.contact.replied", reply))
    assert result.type is EventType.TICKET_COMMENTED and result.snapshot.external_id == "415"
    comment = result.snapshot.comment
    assert comment is not None and (comment.body, comment.public, comment.from_agent) == (
        "Still failing",
        True,
        False,
    )
    note = {"type": "ticket_part", "part_type": "note", "body": "<p>Escalating</p>",
            "author": {"type": "admin", "email": "agent@acme.example"}}  # fmt: skip
    noted = adapt_one(CFG, _ticket_part_event("ticket.note.created", note)).snapshot.comment
    assert noted is not None and (noted.public, noted.from_agent) == (False, True)
    # Its status is the wrapped ticket's, named there when missing.
    unstated = json.loads(_ticket_part_event("ticket.contact.replied", reply))
    del unstated["data"]["item"]["ticket"]["ticket_state"]
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, json.dumps(unstated).encode()), NOW)
    assert info.value.field == "/data/item/ticket/ticket_state"


def test_team_zero_is_no_team() -> None:
    reply = {"type": "ticket_part", "part_type": "comment", "body": "x", "author": {"type": "user"}}
    for zero in ("0", 0):
        event = adapt_one(CFG, _ticket_part_event("ticket.contact.replied", reply, team_assignee_id=zero))
        assert event.snapshot.external_assignee_group is None


def test_a_reply_made_with_the_close_is_in_the_event() -> None:
    # "Reply and close" puts the reply the customer sees in the close part: it was left out, so the
    # answer that solved the ticket never counted as its first response.
    data = json.loads(fixture("intercom", "conversation.admin.closed.json"))
    part = data["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    part["body"] = "<p>The corrected invoice is sent. Closing this.</p>"
    result = adapt_one(CFG, json.dumps(data).encode())
    assert (result.type, result.snapshot.status) == (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED)
    comment = result.snapshot.comment
    assert comment is not None
    assert (comment.body, comment.public, comment.from_agent) == (
        "The corrected invoice is sent. Closing this.",
        True,
        True,
    )


def test_a_bots_reply_is_no_agents_response() -> None:
    """Fin's or an Operator's automatic message (author type bot), an automatic close included,
    met the first-response target as if a person had answered."""
    data = json.loads(fixture("intercom", "conversation.admin.closed.json"))
    part = data["data"]["item"]["conversation_parts"]["conversation_parts"][0]
    part["body"] = "<p>This conversation was closed automatically.</p>"
    part["author"] = {"type": "bot", "id": "814860", "name": "Fin"}
    comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
    assert comment is not None and comment.public and not comment.from_agent


@pytest.mark.parametrize("value", [{"x": 1}, ["<p>a</p>"], True])
def test_a_title_or_body_that_is_not_text_is_no_text(value: object) -> None:
    # str() made the value's Python repr ("{'x': 1}", "True") the ticket's subject or description.
    data = json.loads(fixture("intercom", "conversation.user.created.json"))
    data["data"]["item"]["title"] = value
    data["data"]["item"]["source"]["subject"] = value
    data["data"]["item"]["source"]["body"] = value
    data["app_id"] = None
    template = "https://app.intercom.com/a/inbox/{app_id}/inbox/conversation/{id}"
    snap = adapt_one(config("intercom", url_template=template), json.dumps(data).encode()).snapshot
    assert (snap.subject, snap.description) == ("", "")
    assert snap.url == "https://app.intercom.com/a/inbox//inbox/conversation/147"  # not ".../None/..."
