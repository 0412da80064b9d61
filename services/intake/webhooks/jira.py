"""Jira Cloud / Jira Service Management webhooks (``webhookEvent`` in the body).

``external_id`` is the issue key (``SUP-42``), ``url`` is ``<site>/browse/<key>``; an issue moved to
another project (a new key) is closed under its old key and goes on under the new one. Statuses are custom
per workflow, so the status *name* is looked up first (``options["status_map"]``, then the JSM
defaults below) and the status *category* (new / indeterminate / done), which every status has, is
the fallback. ``options["group_field"]`` names the field holding the team (e.g. ``customfield_10001``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import EventType, TicketStatus

from .common import (
    as_list,
    as_object,
    as_tags,
    build_snapshot,
    map_priority,
    map_status,
    norm_word,
    opt_str,
    parse_datetime,
    parse_json_object,
    pointer_get,
    require_object,
    require_str,
)
from .errors import IgnoredEvent
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_STATUS_NAMES = {
    "waiting for support": TicketStatus.OPEN,
    "in progress": TicketStatus.OPEN,
    "work in progress": TicketStatus.OPEN,
    "escalated": TicketStatus.OPEN,
    "reopened": TicketStatus.OPEN,
    "waiting for customer": TicketStatus.PENDING,
    "pending": TicketStatus.ON_HOLD,  # JSM "Pending": waiting on a third party or a change
    "waiting for third party": TicketStatus.ON_HOLD,
    "resolved": TicketStatus.SOLVED,
    "done": TicketStatus.SOLVED,
    "closed": TicketStatus.CLOSED,
    "canceled": TicketStatus.CLOSED,
    "cancelled": TicketStatus.CLOSED,
    "declined": TicketStatus.CLOSED,
    "won't do": TicketStatus.CLOSED,
}
_CATEGORIES = {"new": TicketStatus.NEW, "indeterminate": TicketStatus.OPEN, "done": TicketStatus.SOLVED}
_STATUS_FIELDS = frozenset({"status", "resolution"})
_COMMENT_CHANGES = frozenset({"issue_comment_edited", "issue_comment_deleted"})


# Deeper than any document Jira's editor makes (lists in tables in panels nest a dozen levels): the
# rest is left out rather than recursed into, which a crafted body of a few KB would overflow.
ADF_MAX_DEPTH = 100


def adf_to_text(node: Any, depth: int = 0) -> str:
    """Plain text of an Atlassian Document Format tree (Jira Cloud REST v3 descriptions/comments)."""
    if depth > ADF_MAX_DEPTH:
        return ""
    if isinstance(node, list):
        return "".join(adf_to_text(child, depth + 1) for child in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    attrs = as_object(node.get("attrs"))
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    if kind in ("mention", "emoji", "inlineCard"):
        return str(attrs.get("text") or attrs.get("shortName") or attrs.get("url") or "")
    text = adf_to_text(node.get("content") or [], depth + 1)
    if kind in ("paragraph", "heading", "listItem", "codeBlock", "blockquote", "rule", "tableRow"):
        return text.rstrip("\n") + "\n"
    return text


def _text(value: Any) -> str:
    return adf_to_text(value).strip() if isinstance(value, dict) else (opt_str(value) or "")


def _status(fields: dict[str, Any], options: dict[str, Any]) -> TicketStatus | None:
    name = opt_str(pointer_get(fields, "/status/name"))
    category = opt_str(pointer_get(fields, "/status/statusCategory/key"))
    known = {norm_word(k) for k in options.get("status_map") or {}} | set(_STATUS_NAMES)
    if name is not None and (norm_word(name) in known or category is None):
        return map_status(name, _STATUS_NAMES, "/issue/fields/status/name", options)
    return map_status(category, _CATEGORIES, "/issue/fields/status/statusCategory/key", {})


def _site(issue: dict[str, Any]) -> str | None:
    self_url = opt_str(issue.get("self"))
    if self_url is None or "/rest/" not in self_url:
        return None
    return self_url.split("/rest/", 1)[0]


def _group(fields: dict[str, Any], options: dict[str, Any]) -> str | None:
    field = opt_str(options.get("group_field"))
    value = fields.get(field) if field else None
    if isinstance(value, dict):
        value = value.get("name") or value.get("value")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0].get("name") or value[0].get("value")
    return opt_str(value)


def _snapshot_fields(config: SourceConfig, data: dict[str, Any], issue: dict[str, Any]) -> dict[str, Any]:
    key = require_str(data, "/issue/key")  # from the body's root: the error names /issue/key, not /key
    fields = as_object(issue.get("fields"))
    site = _site(issue)
    return {
        "external_id": key,
        "subject": opt_str(fields.get("summary")) or "",
        "description": _text(fields.get("description")),
        "status": _status(fields, config.options),
        "priority": map_priority(
            pointer_get(fields, "/priority/name"), {}, "/issue/fields/priority/name", config.options
        ),
        "requester": {
            "email": opt_str(pointer_get(fields, "/reporter/emailAddress")),
            "name": opt_str(pointer_get(fields, "/reporter/displayName")),
        },
        "tags": as_tags(fields.get("labels")),
        "channel": "jira",
        "url": f"{site}/browse/{key}" if site else None,
        "created_at": parse_datetime(fields.get("created"), "/issue/fields/created"),
        "updated_at": parse_datetime(fields.get("updated"), "/issue/fields/updated"),
        "external_assignee_group": _group(fields, config.options),
        "custom_fields": {
            k: v
            for k, v in (
                ("project", pointer_get(fields, "/project/key")),
                ("issue_type", pointer_get(fields, "/issuetype/name")),
            )
            if opt_str(v)
        },
    }


def _user_id(user: Any) -> str | None:
    """Cloud names a user by ``accountId``; Data Center by ``key`` (and ``name``, the login)."""
    user = as_object(user)
    return opt_str(user.get("accountId")) or opt_str(user.get("key")) or opt_str(user.get("name"))


def _comment(data: dict[str, Any], issue: dict[str, Any]) -> dict[str, Any]:
    comment = require_object(data, "/comment")
    # Internal in Service Management (jsdPublic false), or restricted to a project role or a group
    # (any Jira): either way the reporter does not see it.
    public = comment.get("jsdPublic") is not False and not as_object(comment.get("visibility"))
    author_id = _user_id(pointer_get(comment, "/author"))
    reporter_id = _user_id(pointer_get(issue, "/fields/reporter"))
    # Only agents can write internal notes; otherwise anyone but the reporter answers for support,
    # unless a portal customer (account type "customer": a request participant) who cannot be an agent,
    # or an app (account type "app": an automation rule's acknowledgement, a bot's reply), which is
    # no person's answer: it met the first-response target at once (Intercom's bots count as little).
    # comment_created carries the issue without its reporter: then the author's account type
    # says it (an agent's is "atlassian").
    account = opt_str(pointer_get(comment, "/author/accountType"))
    if reporter_id is not None:
        from_agent = not public or (author_id != reporter_id and account not in ("customer", "app"))
    else:
        from_agent = not public or account == "atlassian"
    return {
        "body": _text(comment.get("body")) or " ",
        "author": opt_str(pointer_get(comment, "/author/displayName")),
        "public": public,
        "from_agent": from_agent,
    }


_ORIGINS = {"status": "/issue/fields/status"}


def _comment_identity(data: dict[str, Any]) -> str | None:
    """A webhook subscribed to comment and issue events reports a new comment twice (comment_created,
    and jira:issue_updated as issue_commented), each delivery with its own id: the comment's id
    names it in both, so both publish one event id. Comment ids are unique on a Jira site."""
    comment_id = opt_str(pointer_get(data, "/comment/id"))
    return f"jira-comment:{comment_id}" if comment_id is not None else None


def _moved_away(fields: dict[str, Any], items: list[Any], occurred_at: datetime) -> list[AdaptedEvent]:
    """A move to another project gives the issue a new key (SUP-42 -> OPS-7), and the key is the
    ticket's identity: the ticket under the old key is closed, as an issue moved out of a
    GitHub repository is, and the issue goes on under its new key."""
    old_keys = {
        opt_str(item.get("fromString"))
        for item in items
        if isinstance(item, dict)
        and (str(item.get("field") or "").lower() == "key" or item.get("fieldId") == "issuekey")
    } - {None, fields["external_id"]}
    events = []
    for old in sorted(key for key in old_keys if key is not None):
        url = fields["url"].rsplit("/browse/", 1)[0] + f"/browse/{old}" if fields["url"] else None
        closed = fields | {"external_id": old, "status": TicketStatus.CLOSED, "url": url}
        events.append(
            AdaptedEvent(EventType.TICKET_STATUS_CHANGED, build_snapshot(closed, _ORIGINS), occurred_at)
        )
    return events


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    data = parse_json_object(request.body)
    kind = require_str(data, "/webhookEvent")
    if kind not in ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created"):
        # comment_updated/_deleted: an edit is not a new response; worklogs, links, sprints: no ticket.
        raise IgnoredEvent(f"Jira {kind[:60]} changes no ticket")
    issue = require_object(data, "/issue")
    fields = _snapshot_fields(config, data, issue)
    occurred_at = parse_datetime(data.get("timestamp"), "/timestamp") or fields["updated_at"] or now

    if kind == "comment_created":
        fields["comment"] = _comment(data, issue)
        snapshot = build_snapshot(fields, _ORIGINS)
        return [AdaptedEvent(EventType.TICKET_COMMENTED, snapshot, occurred_at, _comment_identity(data))]
    if kind == "jira:issue_deleted":
        fields["status"] = TicketStatus.CLOSED
        return [AdaptedEvent(EventType.TICKET_STATUS_CHANGED, build_snapshot(fields, _ORIGINS), occurred_at)]
    if kind == "jira:issue_created":
        if pointer_get(issue, "/fields/status/statusCategory/key") == "new":
            fields["status"] = TicketStatus.NEW  # "Waiting for support" means new until first touched
        return [AdaptedEvent(EventType.TICKET_CREATED, build_snapshot(fields, _ORIGINS), occurred_at)]

    items = as_list(pointer_get(data, "/changelog/items"))
    # "field" is the field's name ("Team" for a custom field), "fieldId" its id ("customfield_10001").
    changed = {
        str(i.get(key) or "").lower() for i in items if isinstance(i, dict) for key in ("field", "fieldId")
    }
    group_field = opt_str(config.options.get("group_field"))
    event_type = EventType.TICKET_UPDATED
    # A move wins over a status change made with it: the router moves a ticket only on a
    # reassignment, and reads the status from the snapshot whatever the type.
    if "assignee" in changed or (group_field and group_field.lower() in changed):
        event_type = EventType.TICKET_REASSIGNED_EXTERNALLY
    elif changed & _STATUS_FIELDS:
        event_type = EventType.TICKET_STATUS_CHANGED
    # "issue_commented" arrives as jira:issue_updated with the comment; so do an edit and a deletion
    # of one ("issue_comment_edited", "_deleted"), which are no new response (as comment_updated).
    comment_event = str(data.get("issue_event_type_name") or "")
    edited = comment_event in _COMMENT_CHANGES
    new_comment = isinstance(data.get("comment"), dict) and not edited
    if edited and event_type is EventType.TICKET_UPDATED and not changed:
        raise IgnoredEvent(f"Jira {comment_event} changes no ticket")
    events = []
    if event_type is not EventType.TICKET_UPDATED or not new_comment:
        events.append(AdaptedEvent(event_type, build_snapshot(fields, _ORIGINS), occurred_at))
    if new_comment:
        events.append(
            AdaptedEvent(
                EventType.TICKET_COMMENTED,
                build_snapshot(fields | {"comment": _comment(data, issue)}, _ORIGINS),
                occurred_at,
                _comment_identity(data),
            )
        )
    # Last: the events above keep the ids (derived from their index) they had before.
    return events + _moved_away(fields, items, occurred_at)
