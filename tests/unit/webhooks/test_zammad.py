from __future__ import annotations

import json

import pytest

from services.intake.webhooks import UnmappableError, WebhookRequest, adapt
from shared.events import EventType, Priority, TicketStatus

from ._helpers import NOW, adapt_one, config, fixture

CFG = config("zammad", base_url="https://support.example.com/")


def test_first_article_is_creation() -> None:
    result = adapt_one(CFG, fixture("zammad", "ticket_created.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert (snap.external_id, snap.custom_fields) == ("81", {"number": "10081"})
    assert snap.subject == "Printer on 3rd floor jams"
    assert snap.description == "The printer jams on every second page.\nModel: HP 4000"
    assert (snap.status, snap.priority) == (TicketStatus.NEW, Priority.P2)
    assert (snap.requester.email, snap.requester.name, snap.requester.organization) == (
        "emily@example.com",
        "Emily Adams",
        "Awesome Customer Inc.",
    )
    assert snap.tags == ["printer", "hardware"]
    assert (snap.channel, snap.external_assignee_group) == ("email", "Service Desk")
    assert snap.url == "https://support.example.com/#ticket/zoom/81"
    assert snap.comment is None
    assert result.occurred_at.isoformat() == "2020-11-13T14:34:35.333000+00:00"


def test_later_article_is_comment() -> None:
    result = adapt_one(CFG, fixture("zammad", "article_added.json"))
    assert result.type is EventType.TICKET_COMMENTED
    assert (result.snapshot.status, result.snapshot.priority) == (TicketStatus.PENDING, Priority.P3)
    assert result.snapshot.external_assignee_group == "Service Desk"  # plain string form
    comment = result.snapshot.comment
    assert comment is not None and comment.body.startswith("Internal: ordered a new fuser")
    assert (comment.author, comment.public, comment.from_agent) == ("emma@chrispresso.com", False, True)


def _no_article(state: str, priority: str = "2 normal") -> bytes:
    data = json.loads(fixture("zammad", "article_added.json"))
    del data["article"]
    data["ticket"]["state"] = state
    data["ticket"]["priority"] = {"name": priority}
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("state", "expected_status", "expected_type"),
    [
        ("new", TicketStatus.NEW, EventType.TICKET_UPDATED),
        ("open", TicketStatus.OPEN, EventType.TICKET_UPDATED),
        ("pending reminder", TicketStatus.PENDING, EventType.TICKET_UPDATED),
        ("pending close", TicketStatus.PENDING, EventType.TICKET_UPDATED),
        ("closed", TicketStatus.CLOSED, EventType.TICKET_STATUS_CHANGED),
        ("merged", TicketStatus.CLOSED, EventType.TICKET_STATUS_CHANGED),
    ],
)
def test_state_table(state: str, expected_status: TicketStatus, expected_type: EventType) -> None:
    result = adapt_one(CFG, _no_article(state))
    assert (result.snapshot.status, result.type) == (expected_status, expected_type)


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("1 low", Priority.P4), ("2 normal", Priority.P3), ("3 high", Priority.P2), ("4 urgent", Priority.P1)],
)
def test_priority_table(priority: str, expected: Priority) -> None:
    assert adapt_one(CFG, _no_article("open", priority)).snapshot.priority is expected


def test_trigger_name_override() -> None:
    cfg = config("zammad", trigger_events={"Escalate VIP": "reassigned"})
    request = WebhookRequest({"X-Zammad-Trigger": "Escalate VIP"}, fixture("zammad", "article_added.json"))
    assert adapt(cfg, request, NOW)[0].type is EventType.TICKET_REASSIGNED_EXTERNALLY


def test_unknown_state_names_field() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _no_article("archived")), NOW)
    assert info.value.field == "/ticket/state"


def test_missing_ticket() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, b'{"article": {}}'), NOW)
    assert info.value.field == "/ticket"


def test_an_email_articles_style_sheet_and_comments_are_no_text() -> None:
    # Mail clients put a style sheet (often inside an HTML comment) and conditional comments in the
    # HTML of an e-mail: their CSS was kept as text, the first lines of the ticket's description
    # that the classifier and the language detection read.
    data = json.loads(fixture("zammad", "ticket_created.json"))
    data["article"]["body"] = (
        '<html><head><STYLE type="text/css"><!-- /* Font Definitions */ @font-face {font-family:Calibri;}'
        " p.MsoNormal {margin:0cm; font-size:11.0pt} --></STYLE></head><body>"
        '<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" /></xml><![endif]-->'
        "<p class=MsoNormal>The printer jams on every second page.</p><div>Model: HP 4000</div>"
        "<script>track('open')</script></body></html>"
    )
    snap = adapt_one(CFG, json.dumps(data).encode()).snapshot
    assert snap.description == "The printer jams on every second page.\nModel: HP 4000"


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        ("2 medium", Priority.P3),
        ("4 critical", Priority.P1),
        ("5 blocker", Priority.P1),
        ("0 lowest", Priority.P4),
    ],
)
def test_a_priority_of_the_admins_is_read_by_the_word_after_its_number(
    priority: str, expected: Priority
) -> None:
    # Zammad admins add and rename priorities ("4 critical"); only the four defaults were known, so
    # every event of a ticket with another priority was refused (422) and lost.
    assert adapt_one(CFG, _no_article("open", priority)).snapshot.priority is expected


def test_a_priority_whose_word_is_unknown_is_refused_naming_the_field() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _no_article("open", "3 sometime")), NOW)
    assert info.value.field == "/ticket/priority/name"


def test_an_article_taken_down_by_an_agent_for_the_customer_is_the_customers() -> None:
    # Zammad's documented payload: a phone article an agent (created_by) typed for the customer
    # (origin_by, sender "Customer"). Its author was given as the agent who typed it.
    data = json.loads(fixture("zammad", "article_added.json"))
    data["article"].update(
        {
            "sender": "Customer",
            "type": "phone",
            "internal": False,
            "from": "Emily Adams <emily@example.com>",
            "created_by": {"id": 3, "email": "chris@chrispresso.com", "login": "chris@chrispresso.com"},
            "origin_by": "emily@example.com",
            "origin_by_id": 8,
        }
    )
    comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
    assert comment is not None
    assert (comment.author, comment.public, comment.from_agent) == ("emily@example.com", True, False)
    data["article"]["origin_by"] = {"id": 8, "email": "emily@example.com", "login": "emily"}  # as an object
    comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
    assert comment is not None and comment.author == "emily@example.com"
