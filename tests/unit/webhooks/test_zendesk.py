from __future__ import annotations

import json

import pytest

from services.intake.webhooks import IgnoredEvent, MalformedBodyError, UnmappableError, WebhookRequest, adapt
from shared.events import EventType, Priority, TicketStatus, event_payload

from ._helpers import NOW, adapt_one, config, fixture

CFG = config("zendesk", base_url="https://acme.zendesk.com")


def test_event_ticket_created() -> None:
    result = adapt_one(CFG, fixture("zendesk", "ticket.created.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert result.occurred_at.isoformat() == "2024-04-17T17:18:10+00:00"
    assert snap.external_id == "35436"
    assert snap.subject == "Charged twice for March"
    assert snap.description.startswith("I was charged twice")
    assert (snap.status, snap.priority) == (TicketStatus.NEW, Priority.P2)
    assert snap.tags == ["billing", "refund"]
    assert snap.channel == "web_form"
    assert snap.url == "https://acme.zendesk.com/agent/tickets/35436"
    assert snap.external_assignee_group == "8447388089598"
    assert snap.custom_fields["requester_id"] == "8447388090494"
    assert "assignee_id" not in snap.custom_fields  # null ids are dropped


def test_event_without_base_url_has_no_url() -> None:
    assert adapt_one(config("zendesk"), fixture("zendesk", "ticket.created.json")).snapshot.url is None


def test_event_status_changed() -> None:
    result = adapt_one(CFG, fixture("zendesk", "ticket.status_changed.json"))
    assert (result.type, result.snapshot.status) == (EventType.TICKET_STATUS_CHANGED, TicketStatus.SOLVED)


def test_event_comment_added() -> None:
    result = adapt_one(CFG, fixture("zendesk", "ticket.comment_added.json"))
    assert result.type is EventType.TICKET_COMMENTED
    comment = result.snapshot.comment
    assert comment is not None
    assert comment.body.startswith("Thanks for reaching out")
    assert (comment.author, comment.public, comment.from_agent) == ("Sam Agent", True, True)


def _event(kind: str, **detail: object) -> bytes:
    data = json.loads(fixture("zendesk", "ticket.status_changed.json"))
    data["type"] = f"zen:event-type:{kind}"
    data["event"] = {"current": "x", "previous": "y"}
    data["detail"].update(detail)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("kind", "expected_type", "expected_status"),
    [
        ("ticket.priority_changed", EventType.TICKET_UPDATED, TicketStatus.OPEN),
        ("ticket.tags_changed", EventType.TICKET_UPDATED, TicketStatus.OPEN),
        ("ticket.group_assignment_changed", EventType.TICKET_REASSIGNED_EXTERNALLY, TicketStatus.OPEN),
        ("ticket.agent_assignment_changed", EventType.TICKET_REASSIGNED_EXTERNALLY, TicketStatus.OPEN),
        ("ticket.soft_deleted", EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
        ("ticket.merged", EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
    ],
)
def test_event_kinds(kind: str, expected_type: EventType, expected_status: TicketStatus) -> None:
    result = adapt_one(CFG, _event(kind, status="OPEN"))
    assert (result.type, result.snapshot.status) == (expected_type, expected_status)


@pytest.mark.parametrize("kind", ["user.active_changed", "organization.created", "ticket.comment_redacted"])
def test_event_ignored(kind: str) -> None:
    with pytest.raises(IgnoredEvent):
        adapt(CFG, WebhookRequest({}, _event(kind)), NOW)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("NEW", TicketStatus.NEW),
        ("open", TicketStatus.OPEN),
        ("PENDING", TicketStatus.PENDING),
        ("HOLD", TicketStatus.ON_HOLD),
        ("On-hold", TicketStatus.ON_HOLD),
        ("SOLVED", TicketStatus.SOLVED),
        ("CLOSED", TicketStatus.CLOSED),
        ("DELETED", TicketStatus.CLOSED),  # a soft-deleted ticket's status was refused (422)
    ],
)
def test_status_table(word: str, expected: TicketStatus) -> None:
    assert adapt_one(CFG, _event("ticket.subject_changed", status=word)).snapshot.status is expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("URGENT", Priority.P1),
        ("high", Priority.P2),
        ("NORMAL", Priority.P3),
        ("LOW", Priority.P4),
        (None, None),
    ],
)
def test_priority_table(word: str | None, expected: Priority | None) -> None:
    assert adapt_one(CFG, _event("ticket.subject_changed", priority=word)).snapshot.priority is expected


def test_unknown_status_names_the_field() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _event("ticket.subject_changed", status="limbo")), NOW)
    assert info.value.field == "/detail/status"


def test_status_map_override() -> None:
    cfg = config("zendesk", status_map={"limbo": "on_hold"})
    assert (
        adapt_one(cfg, _event("ticket.subject_changed", status="limbo")).snapshot.status
        is TicketStatus.ON_HOLD
    )


def test_trigger_payload() -> None:
    result = adapt_one(CFG, fixture("zendesk", "trigger.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert snap.external_id == "35437"
    assert snap.subject == "Cannot log in after password reset"
    assert (snap.status, snap.priority) == (TicketStatus.OPEN, Priority.P1)
    assert (snap.requester.email, snap.requester.name, snap.requester.organization) == (
        "dana@example.org",
        "Dana Smith",
        "Example Org",
    )
    assert snap.tags == ["login", "account_locked", "vip"]
    assert snap.channel == "Mail"
    assert snap.external_assignee_group == "Tier 1"
    assert snap.url == "https://acme.zendesk.com/agent/tickets/35437"
    assert result.occurred_at.isoformat() == "2024-04-19T08:05:00+00:00"


def _trigger(**changes: object) -> bytes:
    data = json.loads(fixture("zendesk", "trigger.json"))
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def test_trigger_aliases_and_comment() -> None:
    body = _trigger(
        id=None,
        ticket_id=99,
        title=None,
        subject="Alias subject",
        event=None,
        tags=["a", "B"],
        latest_comment="Any update?",
        comment_author="Dana Smith",
        comment_public="false",
    )
    result = adapt_one(CFG, body)
    assert result.type is EventType.TICKET_COMMENTED
    assert (result.snapshot.external_id, result.snapshot.subject, result.snapshot.tags) == (
        "99",
        "Alias subject",
        ["a", "b"],
    )
    comment = result.snapshot.comment
    assert comment is not None and comment.body == "Any update?"
    assert (comment.author, comment.public, comment.from_agent) == ("Dana Smith", False, False)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("updated", EventType.TICKET_UPDATED),
        ("status_changed", EventType.TICKET_STATUS_CHANGED),
        ("reassigned", EventType.TICKET_REASSIGNED_EXTERNALLY),
        ("ticket.commented", EventType.TICKET_COMMENTED),
        (None, EventType.TICKET_UPDATED),
    ],
)
def test_trigger_event_words(word: str | None, expected: EventType) -> None:
    assert adapt_one(CFG, _trigger(event=word)).type is expected


def test_trigger_missing_id() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _trigger(id=None)), NOW)
    assert info.value.field == "/id"


def test_trigger_localised_date_is_rejected_with_field() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _trigger(created_at="April 19, 2024")), NOW)
    assert info.value.field == "/created_at"


def test_trigger_bad_email_becomes_snapshot_path() -> None:
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, _trigger(requester_email="x" * 400)), NOW)
    assert info.value.field == "/requester/email"


def test_malformed() -> None:
    with pytest.raises(MalformedBodyError):
        adapt(CFG, WebhookRequest({}, b"not json"), NOW)
    with pytest.raises(MalformedBodyError):
        adapt(CFG, WebhookRequest({}, b'["a list"]'), NOW)


def test_a_trigger_payload_without_tags_or_status_says_neither() -> None:
    # Only what the source said is in the event: absent tags must not clear the known ones, and an
    # absent status must not read as "new" (which would reopen a solved ticket).
    body = json.dumps({"id": "77", "title": "Printer jam", "updated_at": "2024-04-17T17:00:00Z"}).encode()
    payload = event_payload(adapt_one(config("zendesk"), body).snapshot)
    assert "tags" not in payload and "status" not in payload


@pytest.mark.parametrize("no_group", ["0", 0, None])
def test_group_id_zero_is_no_group(no_group: object) -> None:
    # Event payloads send an absent id as "0" (as organization_id, assignee_id): a ticket taken out
    # of its group was reported as moved to a group named "0", which became its team.
    result = adapt_one(CFG, _event("ticket.group_assignment_changed", group_id=no_group))
    assert result.type is EventType.TICKET_REASSIGNED_EXTERNALLY
    assert result.snapshot.external_assignee_group is None
    assert (
        adapt_one(
            CFG, _event("ticket.group_assignment_changed", group_id="77")
        ).snapshot.external_assignee_group
        == "77"
    )


@pytest.mark.parametrize("description", [5, ["text"], {"text": "x"}, True])
def test_a_description_that_is_not_text_is_named_by_zendesks_field(description: object) -> None:
    # It was named "/description", which no Zendesk payload has.
    data = json.loads(fixture("zendesk", "ticket.created.json"))
    data["detail"]["description"] = description
    with pytest.raises(UnmappableError) as info:
        adapt(config("zendesk"), WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert info.value.field == "/detail/description"
