from __future__ import annotations

import json

import pytest

from services.intake.webhooks import UnmappableError, WebhookRequest, adapt
from shared.events import EventType, Priority, TicketStatus, event_payload

from ._helpers import NOW, adapt_one, config, fixture

CFG = config("freshdesk")


def test_wrapped_creation() -> None:
    result = adapt_one(CFG, fixture("freshdesk", "ticket_created.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert snap.external_id == "1234"
    assert snap.subject == "Order #5521 arrived damaged"
    assert snap.description == "The box was crushed and the mug inside is broken."
    assert (snap.status, snap.priority) == (TicketStatus.OPEN, Priority.P2)
    assert (snap.requester.email, snap.requester.name, snap.requester.organization) == (
        "lee@shopper.example",
        "Lee Shopper",
        None,
    )
    assert snap.tags == ["shipping", "damaged"]
    assert (snap.channel, snap.external_assignee_group) == ("Email", "Returns")
    assert snap.url == "https://acme.freshdesk.com/helpdesk/tickets/1234"
    assert result.occurred_at.isoformat() == "2024-03-02T09:15:00+00:00"


def test_unwrapped_status_codes() -> None:
    result = adapt_one(CFG, fixture("freshdesk", "status_resolved.json"))
    assert result.type is EventType.TICKET_STATUS_CHANGED
    assert (result.snapshot.status, result.snapshot.priority) == (TicketStatus.SOLVED, Priority.P1)


def _body(**changes: object) -> bytes:
    data = json.loads(fixture("freshdesk", "status_resolved.json"))
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, TicketStatus.OPEN),
        ("3", TicketStatus.PENDING),
        (4, TicketStatus.SOLVED),
        (5, TicketStatus.CLOSED),
        ("Open", TicketStatus.OPEN),
        ("Pending", TicketStatus.PENDING),
        ("Resolved", TicketStatus.SOLVED),
        ("Closed", TicketStatus.CLOSED),
        ("Waiting on Customer", TicketStatus.PENDING),
        ("Waiting on Third Party", TicketStatus.ON_HOLD),
    ],
)
def test_status_table(value: object, expected: TicketStatus) -> None:
    assert adapt_one(CFG, _body(ticket_status=value)).snapshot.status is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, Priority.P4),
        (2, Priority.P3),
        (3, Priority.P2),
        (4, Priority.P1),
        ("Low", Priority.P4),
        ("Medium", Priority.P3),
        ("Urgent", Priority.P1),
    ],
)
def test_priority_table(value: object, expected: Priority) -> None:
    assert adapt_one(CFG, _body(ticket_priority=value)).snapshot.priority is expected


@pytest.mark.parametrize(
    ("triggered", "expected"),
    [
        ("{note_type:public}", EventType.TICKET_COMMENTED),
        ("{group_id:{from:1,to:2}}", EventType.TICKET_REASSIGNED_EXTERNALLY),
        ("{status:{from:2,to:3}}", EventType.TICKET_STATUS_CHANGED),
        # A move made with a status change: the router moves a ticket only on a reassignment.
        ("{status:{from:2,to:3},group_id:{from:1,to:2}}", EventType.TICKET_REASSIGNED_EXTERNALLY),
        ("{priority:{from:Low,to:High}}", EventType.TICKET_UPDATED),
        (None, EventType.TICKET_UPDATED),
    ],
)
def test_triggered_event(triggered: str | None, expected: EventType) -> None:
    assert adapt_one(CFG, _body(triggered_event=triggered)).type is expected


def test_customer_reply_comment() -> None:
    result = adapt_one(
        CFG, _body(triggered_event="{customer_reply:true}", ticket_latest_public_comment="Still broken")
    )
    assert result.type is EventType.TICKET_COMMENTED
    comment = result.snapshot.comment
    assert comment is not None and comment.body == "Still broken" and not comment.from_agent


def test_agent_reply_comment() -> None:
    result = adapt_one(
        CFG, _body(triggered_event="{reply_sent:agent}", ticket_latest_public_comment="Refunded.")
    )
    assert result.snapshot.comment is not None and result.snapshot.comment.from_agent
    assert result.snapshot.comment.public


def test_a_note_is_no_reply() -> None:
    # A private note (ours, explaining an SLA warning, or an agent's) triggers the webhook, but
    # {{ticket.latest_public_comment}} holds an older, public comment, which must not meet the SLA.
    result = adapt_one(
        CFG, _body(triggered_event="{note_type:private}", ticket_latest_public_comment="Where is my refund?")
    )
    comment = result.snapshot.comment
    assert comment is not None and comment.from_agent and not comment.public
    public = adapt_one(CFG, _body(triggered_event="{note_type:public}", ticket_latest_public_comment="Done."))
    assert public.snapshot.comment is not None and public.snapshot.comment.public  # the requester sees it


def _with_status(status: object) -> bytes:
    data = json.loads(fixture("freshdesk", "ticket_created.json"))
    data["freshdesk_webhook"]["ticket_status"] = status
    return json.dumps(data).encode()


def test_custom_statuses_are_read_and_an_unmapped_one_is_open() -> None:
    # Every account starts with custom statuses 6 and 7; more are the admin's own. Refused, each
    # lost the ticket's events; Freshdesk's custom statuses are never resolved ones.
    assert adapt(CFG, WebhookRequest({}, _with_status(6)), NOW)[0].snapshot.status == TicketStatus.PENDING
    assert adapt(CFG, WebhookRequest({}, _with_status("7")), NOW)[0].snapshot.status == TicketStatus.ON_HOLD
    assert (
        adapt(CFG, WebhookRequest({}, _with_status("In Progress")), NOW)[0].snapshot.status
        == TicketStatus.OPEN
    )
    mapped = config("freshdesk", status_map={"Frozen": "on_hold"})
    assert (
        adapt(mapped, WebhookRequest({}, _with_status("Frozen")), NOW)[0].snapshot.status
        == TicketStatus.ON_HOLD
    )
    # A mapping of the admin's that names no status is still refused, at the field.
    wrong = config("freshdesk", status_map={"Frozen": "iced"})
    with pytest.raises(UnmappableError) as info:
        adapt(wrong, WebhookRequest({}, _with_status("Frozen")), NOW)
    assert info.value.field == "/freshdesk_webhook/ticket_status"


def test_missing_id() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _body(ticket_id=None)), NOW)
    assert info.value.field == "/ticket_id"


def test_an_html_description_is_read_as_text() -> None:
    # {{ticket.description}} is HTML (its plain text is {{ticket.description_text}}): without the
    # latter, the classifier and the reasons got the tags.
    html = "<div>The box was <b>crushed</b> &amp; wet.</div><div>The mug is broken.</div>"
    snap = adapt_one(CFG, _body(ticket_description=html)).snapshot
    assert snap.description == "The box was crushed & wet.\nThe mug is broken."
    text = adapt_one(CFG, _body(ticket_description=html, ticket_description_text="Plain.")).snapshot
    assert text.description == "Plain."


@pytest.mark.parametrize(
    ("triggered", "expected_type"),
    [
        ("{status:{from:Open,to:Resolved},reply_sent:sent}", EventType.TICKET_STATUS_CHANGED),
        ("{status:{from:2,to:3},reply_sent:sent}", EventType.TICKET_STATUS_CHANGED),
        # A reply naming a move: a comment, whose group the router compares with the one said before.
        ("{reply_sent:sent,group_id:{from:1,to:2}}", EventType.TICKET_COMMENTED),
    ],
)
def test_a_reply_sent_with_a_status_change_is_in_the_event(triggered: str, expected_type: EventType) -> None:
    # "Send and set as Resolved" is one update: classified as the status change, the event left the
    # reply out, and the ticket's first response was never met. The router reads the status (and
    # the group) of any event, and the reply with it.
    result = adapt_one(CFG, _body(triggered_event=triggered, ticket_latest_public_comment="Refunded."))
    assert result.type is expected_type
    comment = result.snapshot.comment
    assert comment is not None and (comment.body, comment.public, comment.from_agent) == (
        "Refunded.",
        True,
        True,
    )
    plain = adapt_one(
        CFG, _body(triggered_event="{status:{from:2,to:4}}", ticket_latest_public_comment="Old.")
    )
    assert plain.snapshot.comment is None  # no reply named: the comment shown is an older one


def test_a_tag_of_several_words_is_one_tag() -> None:
    # Freshdesk tags may hold spaces ("needs review"), and {{ticket.tags}} separates them by commas:
    # split on spaces as well, one tag became several (and rules on it never matched).
    snap = adapt_one(CFG, _body(ticket_tags="shipping, needs review,Product Feedback")).snapshot
    assert snap.tags == ["shipping", "needs review", "product feedback"]


@pytest.mark.parametrize(
    "triggered", ["{priority:{from:Low,to:High}}", "{note_type:private}", "{group_id:{from:1,to:2}}", None]
)
def test_a_payload_without_the_status_says_none(triggered: str | None) -> None:
    # The rule's JSON is the admin's: without {{ticket.status}} the event said "open", and the
    # router reopened a solved ticket at its next note or priority change.
    body = {"ticket_id": 1234, "ticket_priority": "High", "triggered_event": triggered}
    result = adapt_one(CFG, json.dumps({"freshdesk_webhook": body}).encode())
    assert result.type is not EventType.TICKET_CREATED
    assert "status" not in event_payload(result.snapshot)
    assert event_payload(result.snapshot)["priority"] == "P2"
    created = {"ticket_id": 1234, "triggered_event": "{ticket_action:created}"}
    assert event_payload(adapt_one(CFG, json.dumps(created).encode()).snapshot)["status"] == "new"
