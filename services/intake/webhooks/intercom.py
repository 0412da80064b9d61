"""Intercom webhooks: ``{"type": "notification_event", "id": "notif_...", "topic": ..., "created_at",
"app_id", "data": {"item": <ticket or conversation>}}``.

Both tickets (``ticket.*`` topics) and conversations (``conversation.*``) become tickets here.
Intercom sends no ticket URL; ``options["url_template"]`` (e.g.
``https://app.intercom.com/a/inbox/{app_id}/inbox/conversation/{id}``) builds one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import EventType, Priority, TicketStatus

from .common import (
    as_list,
    as_object,
    build_snapshot,
    first,
    html_to_text,
    map_priority,
    map_status,
    opt_str,
    parse_datetime,
    parse_json_object,
    pointer_get,
    require_object,
    require_str,
)
from .errors import IgnoredEvent
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_TICKET_STATES = {
    "submitted": TicketStatus.NEW,
    "in progress": TicketStatus.OPEN,
    "waiting on customer": TicketStatus.PENDING,
    "resolved": TicketStatus.SOLVED,
}
_CONVERSATION_STATES = {
    "open": TicketStatus.OPEN,
    "snoozed": TicketStatus.PENDING,  # snoozed until the customer answers or the timer fires
    "closed": TicketStatus.CLOSED,
}
# Intercom's only priority is a flag on conversations.
_PRIORITIES = {"priority": Priority.P2, "not priority": Priority.P3}
_AGENT_AUTHORS = frozenset({"admin", "bot", "team"})  # never the requester
# A response counts toward first response when a person gave it: Fin's or an Operator's automatic
# message (author type "bot"), a close message included, is no agent's answer.
_RESPONDING_AUTHORS = frozenset({"admin", "team"})
_STATUS_VERBS = ("state.updated", ".closed", ".opened", ".snoozed", ".unsnoozed")
_STATUS_PARTS = frozenset({"close", "open", "snoozed"})  # parts that may carry a reply


def _event_type(topic: str) -> EventType:
    if topic in ("ticket.created", "conversation.user.created", "conversation.admin.single.created"):
        return EventType.TICKET_CREATED
    if topic.endswith(_STATUS_VERBS) or topic == "conversation.deleted":
        return EventType.TICKET_STATUS_CHANGED
    if topic.endswith(".assigned"):
        return EventType.TICKET_REASSIGNED_EXTERNALLY
    if topic.endswith((".replied", ".noted", ".note.created")):
        return EventType.TICKET_COMMENTED
    return EventType.TICKET_UPDATED


def _status(item: dict[str, Any], options: dict[str, Any]) -> TicketStatus | None:
    if item.get("type") == "ticket":
        state = item.get("ticket_state")
        if isinstance(state, dict):  # API 2.12+: custom states, each with a fixed category
            return map_status(
                state.get("category"), _TICKET_STATES, "/data/item/ticket_state/category", options
            )
        found = map_status(state, _TICKET_STATES, "/data/item/ticket_state", options)
        return TicketStatus.CLOSED if found is None and item.get("open") is False else found
    return map_status(item.get("state"), _CONVERSATION_STATES, "/data/item/state", options)


def _requester(item: dict[str, Any]) -> dict[str, Any]:
    author = as_object(pointer_get(item, "/source/author"))
    if opt_str(author.get("type")) in _AGENT_AUTHORS:
        author = {}
    contact = as_object(pointer_get(item, "/contacts/contacts/0"))
    return {
        "email": opt_str(author.get("email") or contact.get("email")),
        "name": opt_str(author.get("name") or contact.get("name")),
    }


def _last_part(item: dict[str, Any]) -> dict[str, Any] | None:
    for pointer in ("/conversation_parts/conversation_parts", "/ticket_parts/ticket_parts"):
        parts = pointer_get(item, pointer)
        if isinstance(parts, list) and parts and isinstance(parts[-1], dict):
            return parts[-1]
    return None


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    data = parse_json_object(request.body)
    topic = require_str(data, "/topic")
    if not topic.startswith(("ticket.", "conversation.")) or topic.startswith("conversation.rating"):
        raise IgnoredEvent(f"Intercom {topic[:60]} is not about a ticket")  # ping, contact.*, ...
    item = require_object(data, "/data/item")
    # A ticket's reply and note topics (ticket.contact.replied, ticket.note.created...) wrap the
    # ticket and the new part: {"type": "ticket_ticket_part", "ticket": {...}, "ticket_part": {...}}.
    wrapped_part, item_pointer = None, "/data/item"
    if item.get("type") == "ticket_ticket_part":
        wrapped_part, item_pointer = as_object(item.get("ticket_part")), "/data/item/ticket"
        item = require_object(data, item_pointer)
    item_id = require_str(data, f"{item_pointer}/id")
    is_ticket = item.get("type") == "ticket"
    event_type = _event_type(topic)
    template = opt_str(config.options.get("url_template"))
    tags = pointer_get(item, "/tags/tags")
    fields: dict[str, Any] = {
        "external_id": item_id,
        # Titles are plain text ("a<b and c>d" is not a tag); descriptions and bodies are HTML.
        # opt_str: an object or a list is no text (str() made its Python repr the ticket's text).
        "subject": opt_str(
            (first(item, "/ticket_attributes/_default_title_") if is_ticket else None)
            or first(item, "/title", "/source/subject")
        )
        or "",
        "description": html_to_text(
            opt_str(
                (first(item, "/ticket_attributes/_default_description_") if is_ticket else None)
                or first(item, "/source/body")
            )
            or ""
        ),
        "status": _status(item, config.options),
        "priority": map_priority(item.get("priority"), _PRIORITIES, "/data/item/priority", config.options),
        "requester": _requester(item),
        # None when the payload has no tag list: the tags we know stay (a list, even empty, is news).
        "tags": [str(t["name"]) for t in as_list(tags) if isinstance(t, dict) and opt_str(t.get("name"))]
        if tags is not None
        else None,
        # source.type is where (conversation: the Messenger, email, whatsapp...); delivered_as is who
        # started it (customer_initiated, admin_initiated...), no channel.
        "channel": opt_str(pointer_get(item, "/source/type")) or "intercom",
        # str.replace, not format(): a stray brace in the admin's template must not become a 500.
        "url": template.replace("{app_id}", opt_str(data.get("app_id")) or "").replace("{id}", item_id)
        if template
        else None,
        "created_at": parse_datetime(item.get("created_at"), "/data/item/created_at"),
        "updated_at": parse_datetime(item.get("updated_at"), "/data/item/updated_at"),
        # "0" (or 0) is Intercom's "no team".
        "external_assignee_group": None
        if str(item.get("team_assignee_id")) == "0"
        else opt_str(item.get("team_assignee_id")),
        "custom_fields": {"intercom_ticket_id": str(item["ticket_id"])}
        if is_ticket and opt_str(item.get("ticket_id"))
        else {},
    }
    if topic == "conversation.deleted":
        fields["status"] = TicketStatus.CLOSED
    part = wrapped_part or _last_part(item)
    # "Reply and close" (or snooze, or reopen) puts the reply the customer sees in the close part:
    # a response made with the update that solves the ticket.
    replied = event_type is EventType.TICKET_COMMENTED or (
        event_type is EventType.TICKET_STATUS_CHANGED
        and part is not None
        and opt_str(part.get("part_type")) in _STATUS_PARTS
    )
    if replied and part is not None and opt_str(part.get("body")):
        author = as_object(part.get("author"))
        fields["comment"] = {
            "body": html_to_text(str(part["body"])),
            "author": opt_str(author.get("email") or author.get("name")),
            "public": part.get("part_type") not in ("note", "note_and_reopen"),
            "from_agent": opt_str(author.get("type")) in _RESPONDING_AUTHORS,
        }
    occurred_at = parse_datetime(data.get("created_at"), "/created_at") or fields["updated_at"] or now
    return [
        AdaptedEvent(
            event_type,
            build_snapshot(
                fields,
                {"status": f"{item_pointer}/ticket_state" if is_ticket else f"{item_pointer}/state"},
            ),
            occurred_at,
        )
    ]
