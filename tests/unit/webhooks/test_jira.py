from __future__ import annotations

import json
from typing import Any

import pytest

from services.intake.webhooks import IgnoredEvent, UnmappableError, WebhookRequest, adapt, to_envelopes
from services.intake.webhooks.jira import adf_to_text
from shared.events import EventType, Priority, TicketStatus, event_payload

from ._helpers import NOW, adapt_one, config, fixture

CFG = config("jira", group_field="customfield_10050")


def test_issue_created() -> None:
    result = adapt_one(CFG, fixture("jira", "issue_created.json"))
    snap = result.snapshot
    assert result.type is EventType.TICKET_CREATED
    assert result.occurred_at.isoformat() == "2024-01-15T10:30:00+00:00"  # from the ms timestamp
    assert snap.external_id == "SUP-42"
    assert snap.url == "https://acme.atlassian.net/browse/SUP-42"
    assert snap.subject == "VPN drops every 10 minutes"
    assert snap.description == "Since Monday the VPN disconnects.\nClient version 5.2\nOS: Windows 11"
    assert (snap.status, snap.priority) == (TicketStatus.NEW, Priority.P2)
    assert (snap.requester.email, snap.requester.name) == ("ana@customer.example", "Ana Customer")
    assert snap.tags == ["vpn", "network"]
    assert snap.external_assignee_group == "Network team"
    assert snap.created_at is not None and snap.created_at.isoformat() == "2024-01-15T10:30:00+00:00"
    assert snap.custom_fields == {"project": "SUP", "issue_type": "IT Help"}


def test_issue_updated_status_change() -> None:
    result = adapt_one(CFG, fixture("jira", "issue_updated.status.json"))
    assert result.type is EventType.TICKET_STATUS_CHANGED
    assert (result.snapshot.status, result.snapshot.priority) == (TicketStatus.PENDING, Priority.P1)
    assert result.snapshot.description == "Since Monday the VPN disconnects."  # plain-string description


def _updated(items: list[dict[str, str]], **extra: object) -> bytes:
    data = json.loads(fixture("jira", "issue_updated.status.json"))
    data["changelog"]["items"] = items
    data.update(extra)
    return json.dumps(data).encode()


def test_priority_only_change_is_update() -> None:
    result = adapt_one(CFG, _updated([{"field": "priority", "toString": "Highest"}]))
    assert result.type is EventType.TICKET_UPDATED


def test_assignee_change_is_reassignment() -> None:
    assert adapt_one(CFG, _updated([{"field": "assignee"}])).type is EventType.TICKET_REASSIGNED_EXTERNALLY
    assert (
        adapt_one(CFG, _updated([{"field": "customfield_10050"}])).type
        is EventType.TICKET_REASSIGNED_EXTERNALLY
    )


def test_a_move_made_with_a_status_change_is_a_reassignment() -> None:
    """The router moves a ticket only on a reassignment (and reads the status from the snapshot
    whatever the type): a status change was said instead, and the agent's move was lost."""
    both = _updated([{"field": "status", "toString": "In Progress"}, {"field": "customfield_10050"}])
    event = adapt_one(CFG, both)
    assert event.type is EventType.TICKET_REASSIGNED_EXTERNALLY
    assert event.snapshot.status == adapt_one(CFG, _updated([{"field": "status"}])).snapshot.status


def test_issue_commented_via_issue_updated() -> None:
    comment = {
        "id": "1",
        "body": "Any news?",
        "author": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Ana Customer"},
    }
    events = adapt(CFG, WebhookRequest({}, _updated([], comment=comment)), NOW)
    assert [e.type for e in events] == [EventType.TICKET_COMMENTED]
    assert events[0].snapshot.comment is not None and not events[0].snapshot.comment.from_agent


def test_status_change_with_comment_yields_both() -> None:
    comment = {"id": "1", "body": "Resolving.", "author": {"accountId": "agent"}}
    events = adapt(CFG, WebhookRequest({}, _updated([{"field": "status"}], comment=comment)), NOW)
    assert [e.type for e in events] == [EventType.TICKET_STATUS_CHANGED, EventType.TICKET_COMMENTED]


def test_a_comment_reported_by_both_subscriptions_is_one_event() -> None:
    """A webhook subscribed to comment events and to issue events gets the same comment twice: as
    comment_created and as jira:issue_updated (issue_commented). Each delivery has its own id, so
    the comment was published twice (the router counted two responses)."""
    created = json.loads(fixture("jira", "comment_created.json"))
    updated = json.loads(_updated([{"field": "status"}], comment=created["comment"]))
    updated["issue_event_type_name"] = "issue_commented"
    first = to_envelopes(CFG, "delivery-a", adapt(CFG, WebhookRequest({}, json.dumps(created).encode()), NOW))
    second = to_envelopes(
        CFG, "delivery-b", adapt(CFG, WebhookRequest({}, json.dumps(updated).encode()), NOW)
    )
    [comment_a] = [e for e in first if e.type is EventType.TICKET_COMMENTED]
    [comment_b] = [e for e in second if e.type is EventType.TICKET_COMMENTED]
    assert comment_a.event_id == comment_b.event_id  # the router's idempotency on it keeps one
    # The issue event's other change is its own event, under the delivery's id: not lost.
    assert [e.type for e in second] == [EventType.TICKET_STATUS_CHANGED, EventType.TICKET_COMMENTED]
    assert second[0].event_id not in {comment_a.event_id}
    # Another comment, or the same comment id at another source, is another event.
    other = json.loads(json.dumps(created))
    other["comment"]["id"] = "10201"
    [third] = to_envelopes(CFG, "delivery-c", adapt(CFG, WebhookRequest({}, json.dumps(other).encode()), NOW))
    elsewhere = CFG.model_copy(update={"name": "jira-2"})
    [fourth] = to_envelopes(
        elsewhere, "delivery-a", adapt(elsewhere, WebhookRequest({}, json.dumps(created).encode()), NOW)
    )
    assert len({comment_a.event_id, third.event_id, fourth.event_id}) == 3


def test_comment_created_internal_note() -> None:
    result = adapt_one(CFG, fixture("jira", "comment_created.json"))
    assert result.type is EventType.TICKET_COMMENTED
    assert result.snapshot.status is TicketStatus.OPEN
    comment = result.snapshot.comment
    assert comment is not None and comment.body.startswith("Internal: looks like")
    assert (comment.author, comment.public, comment.from_agent) == ("Sam Agent", False, True)


def test_issue_deleted_is_closed() -> None:
    data = json.loads(fixture("jira", "issue_created.json"))
    data["webhookEvent"] = "jira:issue_deleted"
    result = adapt_one(CFG, json.dumps(data).encode())
    assert (result.type, result.snapshot.status) == (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED)


@pytest.mark.parametrize("kind", ["comment_updated", "comment_deleted", "worklog_created", "sprint_started"])
def test_ignored(kind: str) -> None:
    data = json.loads(fixture("jira", "comment_created.json"))
    data["webhookEvent"] = kind
    with pytest.raises(IgnoredEvent):
        adapt(CFG, WebhookRequest({}, json.dumps(data).encode()), NOW)


def _with_status(name: str | None, category: str | None, **options: Any) -> TicketStatus | None:
    data = json.loads(fixture("jira", "issue_updated.status.json"))
    status: dict[str, object] = {}
    if name is not None:
        status["name"] = name
    if category is not None:
        status["statusCategory"] = {"key": category}
    data["issue"]["fields"]["status"] = status
    return adapt_one(config("jira", **options), json.dumps(data).encode()).snapshot.status


@pytest.mark.parametrize(
    ("name", "category", "expected"),
    [
        ("Waiting for support", "new", TicketStatus.OPEN),
        ("Waiting for customer", "indeterminate", TicketStatus.PENDING),
        ("Pending", "indeterminate", TicketStatus.ON_HOLD),
        ("Escalated", "indeterminate", TicketStatus.OPEN),
        ("Resolved", "done", TicketStatus.SOLVED),
        ("Closed", "done", TicketStatus.CLOSED),
        ("Canceled", "done", TicketStatus.CLOSED),
        ("Backlog", "new", TicketStatus.NEW),
        ("Under review", "indeterminate", TicketStatus.OPEN),
        ("Shipped", "done", TicketStatus.SOLVED),
    ],
)
def test_status_names_then_categories(name: str, category: str, expected: TicketStatus) -> None:
    assert _with_status(name, category) is expected


def test_status_map_overrides_names() -> None:
    assert _with_status("Shipped", "done", status_map={"Shipped": "closed"}) is TicketStatus.CLOSED


def test_unknown_status_without_category() -> None:
    with pytest.raises(UnmappableError) as info:
        _with_status("Shipped", None)
    assert info.value.field == "/issue/fields/status/name"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Highest", Priority.P1),
        ("High", Priority.P2),
        ("Medium", Priority.P3),
        ("Low", Priority.P4),
        ("Lowest", Priority.P4),
        ("Blocker", Priority.P1),
    ],
)
def test_priorities(name: str, expected: Priority) -> None:
    data = json.loads(fixture("jira", "issue_created.json"))
    data["issue"]["fields"]["priority"] = {"name": name}
    assert adapt_one(CFG, json.dumps(data).encode()).snapshot.priority is expected


def test_missing_key_names_field() -> None:
    data = json.loads(fixture("jira", "issue_created.json"))
    del data["issue"]["key"]
    with pytest.raises(UnmappableError) as info:
        adapt(CFG, WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert info.value.field == "/issue/key"  # from the body's root, as every other field is named


def test_adf_to_text() -> None:
    doc = {
        "type": "doc",
        "content": [
            {"type": "heading", "content": [{"type": "text", "text": "Title"}]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [{"type": "mention", "attrs": {"id": "1", "text": "@Sam"}}],
                            }
                        ],
                    },
                ],
            },
        ],
    }
    assert adf_to_text(doc).strip() == "Title\none\n@Sam"


def test_a_reopen_to_a_new_status_is_in_the_event() -> None:
    # Done -> To Do: status category "new", the snapshot's default, was left out of the event, and
    # the router kept the ticket solved.
    data = json.loads(_updated([{"field": "status", "fromString": "Done", "toString": "To Do"}]))
    data["issue"]["fields"]["status"] = {"name": "To Do", "statusCategory": {"key": "new"}}
    [event] = adapt(CFG, WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert event_payload(event.snapshot)["status"] == "new"


def test_comment_created_without_the_reporter_tells_agents_by_account_type() -> None:
    # comment_created carries the issue without its reporter: a public comment was taken for the
    # customer's, so an agent's reply never counted as the first response.
    data = json.loads(fixture("jira", "comment_created.json"))
    data["comment"]["jsdPublic"] = True
    for account, from_agent in (("atlassian", True), ("customer", False), ("app", False), (None, False)):
        data["comment"]["author"]["accountType"] = account
        comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
        assert comment is not None and (comment.public, comment.from_agent) == (True, from_agent), account


def test_a_team_change_is_named_by_its_field_id_in_the_changelog() -> None:
    # Jira's changelog names a custom field by its display name in "field" and by its id in
    # "fieldId": a team moved in the helpdesk was an update, and the router kept the ticket where it was.
    item = {"field": "Team", "fieldtype": "custom", "fieldId": "customfield_10050", "toString": "Network"}
    assert adapt_one(CFG, _updated([item])).type is EventType.TICKET_REASSIGNED_EXTERNALLY
    status = {"field": "status", "fieldtype": "jira", "fieldId": "status", "toString": "In Progress"}
    assert adapt_one(CFG, _updated([status, item])).type is EventType.TICKET_REASSIGNED_EXTERNALLY
    other = {"field": "Region", "fieldtype": "custom", "fieldId": "customfield_10099"}
    assert adapt_one(CFG, _updated([other])).type is EventType.TICKET_UPDATED


@pytest.mark.parametrize("kind", ["issue_comment_edited", "issue_comment_deleted"])
def test_an_edited_or_deleted_comment_is_no_new_comment(kind: str) -> None:
    # Jira sends an edit or a deletion of a comment as jira:issue_updated with the comment in it:
    # it was published as a new comment (a customer's edit reopened the wait for an answer).
    comment = {"id": "1", "body": "Any news? (edited)", "author": {"accountId": "5b10a2844c20165700ede21g"}}
    body = _updated([], comment=comment, issue_event_type_name=kind)
    with pytest.raises(IgnoredEvent):
        adapt(CFG, WebhookRequest({}, body), NOW)
    status = [{"field": "status", "fieldId": "status", "toString": "In Progress"}]
    body = _updated(status, comment=comment, issue_event_type_name=kind)
    events = adapt(CFG, WebhookRequest({}, body), NOW)
    assert [e.type for e in events] == [EventType.TICKET_STATUS_CHANGED]
    assert events[0].snapshot.comment is None


def test_a_request_participant_answering_is_no_agent() -> None:
    # In Service Management other customers (request participants) comment too: anyone but the
    # reporter was taken for an agent, so a participant's "me too" met the first-response target.
    participant = {"accountId": "qm:participant", "accountType": "customer", "displayName": "Bo Colleague"}
    comment = {"id": "2", "body": "Same here.", "jsdPublic": True, "author": participant}
    events = adapt(CFG, WebhookRequest({}, _updated([], comment=comment)), NOW)
    assert events[0].snapshot.comment is not None and not events[0].snapshot.comment.from_agent
    agent = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "accountType": "atlassian", "displayName": "Sam Agent"}
    events = adapt(CFG, WebhookRequest({}, _updated([], comment=comment | {"author": agent})), NOW)
    assert events[0].snapshot.comment is not None and events[0].snapshot.comment.from_agent


def test_an_apps_public_comment_is_no_agents_answer() -> None:
    # An automation rule's acknowledgement ("We got your request") or a bot's reply is written by an
    # app account: it was taken for an agent's, and met the first-response target at once.
    app = {"accountId": "557058:automation", "accountType": "app", "displayName": "Automation for Jira"}
    comment = {"id": "4", "body": "Thanks, we received your request.", "jsdPublic": True, "author": app}
    [event] = adapt(CFG, WebhookRequest({}, _updated([], comment=comment)), NOW)
    assert event.snapshot.comment is not None
    assert (event.snapshot.comment.public, event.snapshot.comment.from_agent) == (True, False)
    # Its internal note is still support's own (no reply the requester sees, so no first response).
    [event] = adapt(CFG, WebhookRequest({}, _updated([], comment=comment | {"jsdPublic": False})), NOW)
    assert event.snapshot.comment is not None
    assert (event.snapshot.comment.public, event.snapshot.comment.from_agent) == (False, True)


def test_data_center_users_are_told_apart_by_key_or_name() -> None:
    # Jira Data Center names users by "key" and "name" (no accountId): every public comment was
    # taken for the reporter's, so an agent's answer never met the first-response target.
    data = json.loads(_updated([]))
    data["issue"]["fields"]["reporter"] = {"key": "JIRAUSER10100", "name": "ana", "displayName": "Ana"}
    agent = {"key": "JIRAUSER10200", "name": "sam", "displayName": "Sam Agent"}
    data["comment"] = {"id": "3", "body": "Restart the client, please.", "author": agent}
    [event] = adapt(CFG, WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert event.snapshot.comment is not None and event.snapshot.comment.from_agent
    data["comment"]["author"] = {"key": "JIRAUSER10100", "name": "ana", "displayName": "Ana"}
    [event] = adapt(CFG, WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert event.snapshot.comment is not None and not event.snapshot.comment.from_agent


def test_an_issue_moved_to_another_project_is_closed_under_its_old_key() -> None:
    # A move to another project gives the issue a new key (SUP-42 -> OPS-7), which is its
    # external_id: the new key became a second ticket and the old one stayed open, its SLA running.
    moved = [
        {"field": "Key", "fieldtype": "jira", "fromString": "SUP-42", "toString": "OPS-7"},
        {"field": "project", "fieldtype": "jira", "fromString": "Support", "toString": "Operations"},
    ]
    data = json.loads(_updated(moved))
    data["issue"]["key"] = "OPS-7"
    events = adapt(CFG, WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert [(e.type, e.snapshot.external_id, e.snapshot.status) for e in events] == [
        (EventType.TICKET_UPDATED, "OPS-7", TicketStatus.PENDING),
        (EventType.TICKET_STATUS_CHANGED, "SUP-42", TicketStatus.CLOSED),
    ]
    assert events[1].snapshot.url == "https://acme.atlassian.net/browse/SUP-42"


@pytest.mark.parametrize(
    "restriction", [{"type": "role", "value": "Developers"}, {"type": "group", "value": "jira-staff"}]
)
def test_a_comment_restricted_to_a_role_or_group_is_no_reply_the_requester_sees(
    restriction: dict[str, str],
) -> None:
    # Jira Software has no jsdPublic: an agent hides a comment from the reporter by restricting it
    # to a project role or a group ("visibility"). It was taken for a public answer, so an internal
    # remark met the first-response target.
    data = json.loads(fixture("jira", "comment_created.json"))
    del data["comment"]["jsdPublic"]
    data["comment"]["author"]["accountType"] = "atlassian"
    data["comment"]["visibility"] = restriction | {"identifier": restriction["value"]}
    comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
    assert comment is not None and (comment.public, comment.from_agent) == (False, True)
    data["comment"]["visibility"] = None  # what Jira sends for a comment anyone may read
    comment = adapt_one(CFG, json.dumps(data).encode()).snapshot.comment
    assert comment is not None and (comment.public, comment.from_agent) == (True, True)


@pytest.mark.parametrize("key", [None, "", 1.5, ["SUP-42"], True])
def test_an_issue_without_a_usable_key_names_issue_key(key: object) -> None:
    # It named "/key", which no Jira payload has at its root.
    data = json.loads(fixture("jira", "issue_created.json"))
    data["issue"]["key"] = key
    with pytest.raises(UnmappableError) as info:
        adapt(config("jira"), WebhookRequest({}, json.dumps(data).encode()), NOW)
    assert info.value.field == "/issue/key"
