"""Zendesk: event-subscription webhooks and trigger/automation webhooks.

**Event subscriptions** (``{"type": "zen:event-type:ticket.<event>", "id", "time", "detail": {...},
"event": {...}}``): ``detail`` holds the ticket, ``event`` the change. These payloads carry ids only
(requester, organisation, group), so the ids go to ``custom_fields`` / ``external_assignee_group``;
set ``options["base_url"]`` (``https://acme.zendesk.com``) to get ticket URLs.

**Trigger/automation webhooks** carry JSON the admin writes from placeholders. Expected keys (aliases
after the slash; only ``id`` is required)::

    {
      "id": "{{ticket.id}}",                          / ticket_id
      "event": "created",                             / event_type: created, updated, commented,
                                                        status_changed, reassigned (default: updated,
                                                        or commented when a comment is present)
      "title": "{{ticket.title}}",                    / subject
      "description": "{{ticket.description}}",
      "status": "{{ticket.status}}",                  new, open, pending, hold, solved, closed
      "priority": "{{ticket.priority}}",              urgent, high, normal, low
      "requester_email": "{{ticket.requester.email}}",
      "requester_name": "{{ticket.requester.name}}",
      "organization": "{{ticket.organization.name}}", / requester_organization
      "tags": "{{ticket.tags}}",                      space separated, or a JSON list
      "via": "{{ticket.via}}",                        / channel
      "group": "{{ticket.group.name}}",               / group_name
      "url": "{{ticket.link}}",                       / link (https:// is added when missing)
      "created_at": "{{ticket.created_at_with_timestamp}}",
      "updated_at": "{{ticket.updated_at_with_timestamp}}",
      "comment": "{{ticket.latest_comment}}",         / latest_comment
      "comment_author": "{{ticket.latest_comment.author.name}}",
      "comment_public": "{{ticket.latest_comment.is_public}}",
      "comment_from_agent": "true"                    set per trigger: agent or requester update
    }

Dates must be ISO-8601 (the ``*_with_timestamp`` placeholders), not the localised ``{{ticket.created_at}}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import EventType, Priority, TicketStatus

from .common import (
    as_bool,
    as_tags,
    build_snapshot,
    first,
    map_event_word,
    map_priority,
    map_status,
    opt_str,
    parse_datetime,
    parse_json_object,
    pointer_get,
    require_str,
    text_or_empty,
)
from .errors import IgnoredEvent
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_STATUSES = {
    "new": TicketStatus.NEW,
    "open": TicketStatus.OPEN,
    "pending": TicketStatus.PENDING,
    "hold": TicketStatus.ON_HOLD,
    "on hold": TicketStatus.ON_HOLD,
    "solved": TicketStatus.SOLVED,
    "closed": TicketStatus.CLOSED,
    "deleted": TicketStatus.CLOSED,  # a soft-deleted ticket's status (ticket.soft_deleted)
}
_PRIORITIES: dict[str, Priority] = {}  # urgent/high/normal/low are the contract's own aliases

_EVENT_PREFIX = "zen:event-type:"
_GONE = frozenset(
    {"ticket.soft_deleted", "ticket.permanently_deleted", "ticket.marked_as_spam", "ticket.merged"}
)
_REASSIGNED = frozenset({"ticket.agent_assignment_changed", "ticket.group_assignment_changed"})
# Comment visibility and attachment housekeeping change nothing the router looks at.
_NOISE = frozenset(
    {
        "ticket.comment_made_private",
        "ticket.comment_redacted",
        "ticket.attachment_linked_to_comment",
        "ticket.attachment_redacted_from_comment",
    }
)


def _ticket_url(config: SourceConfig, ticket_id: str) -> str | None:
    base = opt_str(config.options.get("base_url"))
    return f"{base.rstrip('/')}/agent/tickets/{ticket_id}" if base else None


def _adapt_event(config: SourceConfig, data: dict[str, Any], kind: str, now: datetime) -> AdaptedEvent:
    if not kind.startswith("ticket."):
        raise IgnoredEvent(f"Zendesk {kind[:60]} is not a ticket event")
    if kind in _NOISE:
        raise IgnoredEvent(f"Zendesk {kind} changes no ticket")
    ticket_id = require_str(data, "/detail/id")
    detail = data["detail"]
    current = pointer_get(data, "/event/current")
    status_source, status_field = (
        (current, "/event/current")
        if kind == "ticket.status_changed" and isinstance(current, str)
        else (detail.get("status"), "/detail/status")
    )
    # Event payloads send an absent id as "0".
    present = {key: text for key, value in detail.items() if (text := opt_str(value)) not in (None, "0")}
    custom = {
        key: present[key]
        for key in ("requester_id", "organization_id", "assignee_id", "brand_id", "form_id", "type")
        if key in present
    }
    fields: dict[str, Any] = {
        "external_id": ticket_id,
        "subject": opt_str(detail.get("subject")) or "",
        "description": text_or_empty(detail.get("description"), "/detail/description"),
        "status": map_status(status_source, _STATUSES, status_field, config.options),
        "priority": map_priority(detail.get("priority"), _PRIORITIES, "/detail/priority", config.options),
        "tags": as_tags(detail.get("tags")),
        "channel": opt_str(pointer_get(detail, "/via/channel")),
        "url": _ticket_url(config, ticket_id),
        "created_at": parse_datetime(detail.get("created_at"), "/detail/created_at"),
        "updated_at": parse_datetime(detail.get("updated_at"), "/detail/updated_at"),
        "external_assignee_group": present.get("group_id"),
        "custom_fields": custom,
    }
    event_type = EventType.TICKET_UPDATED
    if kind == "ticket.created":
        event_type = EventType.TICKET_CREATED
    elif kind == "ticket.status_changed":
        event_type = EventType.TICKET_STATUS_CHANGED
    elif kind in _GONE:
        event_type, fields["status"] = EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED
    elif kind in _REASSIGNED:
        event_type = EventType.TICKET_REASSIGNED_EXTERNALLY
    elif kind == "ticket.comment_added":
        event_type = EventType.TICKET_COMMENTED
        fields["comment"] = {
            "body": require_str(data, "/event/comment/body"),
            "author": opt_str(pointer_get(data, "/event/comment/author/name")),
            "public": as_bool(pointer_get(data, "/event/comment/is_public"), True),
            "from_agent": as_bool(pointer_get(data, "/event/comment/author/is_staff"), False),
        }
    occurred_at = parse_datetime(data.get("time"), "/time") or fields["updated_at"] or now
    return AdaptedEvent(event_type, build_snapshot(fields, {"status": status_field}), occurred_at)


def _keyed(data: dict[str, Any], *keys: str) -> tuple[Any, str]:
    """The first present key and its pointer, so errors name the key the admin actually used."""
    for key in keys:
        if data.get(key) not in (None, ""):
            return data[key], f"/{key}"
    return None, f"/{keys[0]}"


def _with_scheme(url: str | None) -> str | None:
    # {{ticket.link}} renders "acme.zendesk.com/agent/tickets/1", without a scheme.
    if url and "://" not in url:
        return f"https://{url}"
    return url


def _adapt_trigger(config: SourceConfig, data: dict[str, Any], now: datetime) -> AdaptedEvent:
    _, id_field = _keyed(data, "id", "ticket_id")
    status, status_field = _keyed(data, "status")
    priority, priority_field = _keyed(data, "priority")
    created, created_field = _keyed(data, "created_at")
    updated, updated_field = _keyed(data, "updated_at")
    fields: dict[str, Any] = {
        "external_id": require_str(data, id_field),
        "subject": opt_str(first(data, "/title", "/subject")) or "",
        "description": opt_str(data.get("description")) or "",
        "status": map_status(status, _STATUSES, status_field, config.options),
        "priority": map_priority(priority, _PRIORITIES, priority_field, config.options),
        "requester": {
            "email": opt_str(first(data, "/requester_email", "/requester/email")),
            "name": opt_str(first(data, "/requester_name", "/requester/name")),
            "organization": opt_str(
                first(data, "/organization", "/requester_organization", "/organization_name")
            ),
        },
        "tags": as_tags(data.get("tags")),
        "channel": opt_str(first(data, "/via", "/channel")),
        "url": _with_scheme(opt_str(first(data, "/url", "/link"))),
        "created_at": parse_datetime(created, created_field),
        "updated_at": parse_datetime(updated, updated_field),
        "external_assignee_group": opt_str(first(data, "/group", "/group_name", "/assignee_group")),
    }
    event_word, event_field = _keyed(data, "event", "event_type")
    event_type = map_event_word(event_word, event_field)
    comment = opt_str(first(data, "/comment", "/latest_comment"))
    if comment is not None and event_type in (None, EventType.TICKET_COMMENTED):
        event_type = EventType.TICKET_COMMENTED
        fields["comment"] = {
            "body": comment,
            "author": opt_str(data.get("comment_author")),
            "public": as_bool(data.get("comment_public"), True),
            "from_agent": as_bool(data.get("comment_from_agent"), False),
        }
    return AdaptedEvent(
        event_type or EventType.TICKET_UPDATED, build_snapshot(fields), fields["updated_at"] or now
    )


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    data = parse_json_object(request.body)
    kind = data.get("type")
    if isinstance(kind, str) and kind.startswith(_EVENT_PREFIX):
        return [_adapt_event(config, data, kind.removeprefix(_EVENT_PREFIX), now)]
    return [_adapt_trigger(config, data, now)]
