"""Zammad trigger webhooks with the default payload: ``{"ticket": {...}, "article": {...}}``.

The payload names no event, so it is inferred: the first article of a ticket means creation, any
other article a comment, no article a status change (closed/merged) or an update.
``options["trigger_events"]`` maps trigger names (``X-Zammad-Trigger``) to event words to override
that. ``external_id`` is Zammad's ticket id (the number shown to humans goes to custom_fields), and
``options["base_url"]`` (``https://support.example.com``) yields ``<base>/#ticket/zoom/<id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import PRIORITY_ALIASES, EventType, Priority, TicketStatus

from .common import (
    as_list,
    as_object,
    as_tags,
    build_snapshot,
    html_to_text,
    map_event_word,
    map_priority,
    map_status,
    norm_word,
    opt_str,
    parse_datetime,
    parse_json_object,
    require_object,
    require_str,
)
from .errors import UnmappableError
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_STATES = {
    "new": TicketStatus.NEW,
    "open": TicketStatus.OPEN,
    "pending reminder": TicketStatus.PENDING,
    "pending close": TicketStatus.PENDING,  # closes by itself unless the customer answers
    "closed": TicketStatus.CLOSED,
    "merged": TicketStatus.CLOSED,
    "removed": TicketStatus.CLOSED,
}
# "1 low", "2 normal", "3 high" (and an admin's "4 urgent"): the word after the number decides.
_PRIORITIES = {"1 low": Priority.P4, "2 normal": Priority.P3, "3 high": Priority.P2, "4 urgent": Priority.P1}


def _priority(name: str | None, field: str, options: dict[str, Any]) -> Priority | None:
    """The defaults by name, then any "<number> <word>" of the admin's by its word ("4 critical")."""
    try:
        return map_priority(name, _PRIORITIES, field, options)
    except UnmappableError:
        number, _, word = (name or "").strip().partition(" ")
        mapped = {norm_word(k) for k in options.get("priority_map") or {}}
        found = None if word.strip().isdigit() else PRIORITY_ALIASES.get(norm_word(word))
        if not number.isdigit() or found is None or norm_word(name or "") in mapped:
            raise  # no word we know, or the admin's own mapping is wrong: say so
        return found


def _author(article: dict[str, Any]) -> str | None:
    """Who wrote the article: ``origin_by`` when an agent (``created_by``) took it down for someone
    (a phone call), a login string or a user object; else its creator; else its From."""
    origin = article.get("origin_by")
    if isinstance(origin, dict):
        origin = origin.get("email") or origin.get("login")
    created = as_object(article.get("created_by"))
    return opt_str(origin) or opt_str(created.get("email")) or opt_str(article.get("from"))


def _name(value: Any) -> str | None:
    """Zammad renders associations either as objects with a name or as plain strings."""
    if isinstance(value, dict):
        return opt_str(value.get("name"))
    return opt_str(value)


def _event_type(
    config: SourceConfig,
    request: WebhookRequest,
    ticket: dict[str, Any],
    article: dict[str, Any],
    status: TicketStatus | None,
) -> EventType:
    trigger = request.header("X-Zammad-Trigger")
    overrides = as_object(config.options.get("trigger_events"))
    if trigger and trigger in overrides:
        found = map_event_word(overrides[trigger], "options/trigger_events")
        if found is not None:
            return found
    if article:
        ids = as_list(ticket.get("article_ids"))
        first_article = ticket.get("article_count") == 1 or (ids and ids[0] == article.get("id"))
        return EventType.TICKET_CREATED if first_article else EventType.TICKET_COMMENTED
    if status is not None and status.is_resolved:
        return EventType.TICKET_STATUS_CHANGED
    return EventType.TICKET_UPDATED


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    data = parse_json_object(request.body)
    ticket = require_object(data, "/ticket")
    ticket_id = require_str(data, "/ticket/id")
    article = as_object(data.get("article"))
    customer = as_object(ticket.get("customer"))
    name = " ".join(filter(None, (opt_str(customer.get("firstname")), opt_str(customer.get("lastname")))))
    base = opt_str(config.options.get("base_url"))
    state_field = "/ticket/state/name" if isinstance(ticket.get("state"), dict) else "/ticket/state"
    priority_field = "/ticket/priority" + ("/name" if isinstance(ticket.get("priority"), dict) else "")
    fields: dict[str, Any] = {
        "external_id": ticket_id,
        "subject": opt_str(ticket.get("title")) or "",
        "status": map_status(_name(ticket.get("state")), _STATES, state_field, config.options),
        "priority": _priority(_name(ticket.get("priority")), priority_field, config.options),
        "requester": {
            "email": opt_str(customer.get("email")),
            "name": name or None,
            "organization": _name(customer.get("organization")) or _name(ticket.get("organization")),
        },
        "tags": as_tags(ticket.get("tags")),
        "channel": opt_str(ticket.get("create_article_type")),
        "url": f"{base.rstrip('/')}/#ticket/zoom/{ticket_id}" if base else None,
        "created_at": parse_datetime(ticket.get("created_at"), "/ticket/created_at"),
        "updated_at": parse_datetime(ticket.get("updated_at"), "/ticket/updated_at"),
        "external_assignee_group": _name(ticket.get("group")),
        "custom_fields": {"number": str(ticket["number"])} if opt_str(ticket.get("number")) else {},
    }
    event_type = _event_type(config, request, ticket, article, fields["status"])
    body = opt_str(article.get("body"))
    if body is not None and article.get("content_type", "text/html") == "text/html":
        body = html_to_text(body)
    if event_type is EventType.TICKET_CREATED:
        fields["description"] = body or ""
    elif event_type is EventType.TICKET_COMMENTED and body:
        fields["comment"] = {
            "body": body,
            "author": _author(article),
            "public": article.get("internal") is not True,
            "from_agent": article.get("sender") == "Agent",
        }
    return [
        AdaptedEvent(event_type, build_snapshot(fields, {"status": state_field}), fields["updated_at"] or now)
    ]
