"""Freshdesk automation-rule webhooks.

Freshdesk does not sign webhooks; the rule sends our secret in a header or as Basic auth (see
``signatures``). The body is the "simple" JSON of the rule, wrapped or not::

    {"freshdesk_webhook": {
        "ticket_id": 42, "ticket_subject": "...", "ticket_description": "...",
        "ticket_status": "Open" | 2, "ticket_priority": "Urgent" | 4,
        "ticket_requester_email": "...", "ticket_requester_name": "...", "ticket_company_name": "...",
        "ticket_tags": "a, b", "ticket_source": "Email", "ticket_group_name": "...",
        "ticket_url": "https://acme.freshdesk.com/helpdesk/tickets/42",
        "ticket_created_at": "...", "ticket_updated_at": "...",
        "ticket_latest_public_comment": "...", "triggered_event": "{ticket_action:created}"}}

``triggered_event`` is free text across rule types, so it is classified by keywords.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import EventType, Priority, TicketStatus

from .common import (
    COMMAS,
    as_tags,
    build_snapshot,
    html_to_text,
    map_priority,
    map_status,
    norm_word,
    opt_str,
    parse_datetime,
    parse_json_object,
    require_str,
)
from .errors import UnmappableError
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_STATUSES = {
    "2": TicketStatus.OPEN,
    "3": TicketStatus.PENDING,
    "4": TicketStatus.SOLVED,
    "5": TicketStatus.CLOSED,
    # The two custom statuses every Freshdesk account starts with.
    "6": TicketStatus.PENDING,  # Waiting on Customer
    "7": TicketStatus.ON_HOLD,  # Waiting on Third Party
    "resolved": TicketStatus.SOLVED,
    "waiting on customer": TicketStatus.PENDING,
    "waiting on third party": TicketStatus.ON_HOLD,
}
# Freshdesk numbers priorities 1 (low) .. 4 (urgent), which the contract's digit aliases already follow.
_PRIORITIES: dict[str, Priority] = {}


def _status(value: Any, field: str, options: dict[str, Any]) -> TicketStatus | None:
    """A custom status the admin has not mapped (``status_map``) is open: Freshdesk's custom
    statuses are never its resolved or closed ones. Refusing it lost the ticket's events."""
    try:
        return map_status(value, _STATUSES, field, options)
    except UnmappableError:
        if norm_word(str(value)) in {norm_word(k) for k in options.get("status_map") or {}}:
            raise  # the admin's own mapping is wrong: say so
        return TicketStatus.OPEN


def _says_comment(text: str, has_comment: bool) -> bool:
    """Whether the rule fired on a reply or a note (or names nothing and carries a comment)."""
    return any(word in text for word in ("reply", "note", "comment")) or (has_comment and not text)


def _classify(triggered: str | None, has_comment: bool) -> EventType:
    text = (triggered or "").lower()
    if "created" in text or "ticket_action:new" in text:
        return EventType.TICKET_CREATED
    moved = any(word in text for word in ("group", "agent", "responder", "assign"))
    if "status" in text and not moved:  # a move wins: the router moves a ticket only on one
        return EventType.TICKET_STATUS_CHANGED
    if _says_comment(text, has_comment):
        return EventType.TICKET_COMMENTED
    if moved:
        return EventType.TICKET_REASSIGNED_EXTERNALLY
    return EventType.TICKET_UPDATED


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    data = parse_json_object(request.body)
    root = "/freshdesk_webhook" if isinstance(data.get("freshdesk_webhook"), dict) else ""
    ticket: dict[str, Any] = data["freshdesk_webhook"] if root else data

    def field(key: str) -> str:
        return f"{root}/{key}"

    triggered = opt_str(ticket.get("triggered_event"))
    comment = opt_str(ticket.get("ticket_latest_public_comment"))
    event_type = _classify(triggered, comment is not None)
    fields: dict[str, Any] = {
        "external_id": require_str(data, field("ticket_id")),
        "subject": opt_str(ticket.get("ticket_subject")) or "",
        # {{ticket.description}} is HTML; {{ticket.description_text}} its plain text.
        "description": opt_str(ticket.get("ticket_description_text"))
        or html_to_text(opt_str(ticket.get("ticket_description")) or ""),
        "status": _status(ticket.get("ticket_status"), field("ticket_status"), config.options),
        "priority": map_priority(
            ticket.get("ticket_priority"), _PRIORITIES, field("ticket_priority"), config.options
        ),
        "requester": {
            "email": opt_str(ticket.get("ticket_requester_email")),
            "name": opt_str(ticket.get("ticket_requester_name")),
            "organization": opt_str(ticket.get("ticket_company_name")),
        },
        "tags": as_tags(ticket.get("ticket_tags"), COMMAS),
        "channel": opt_str(ticket.get("ticket_source")),
        "url": opt_str(ticket.get("ticket_url")),
        "created_at": parse_datetime(ticket.get("ticket_created_at"), field("ticket_created_at")),
        "updated_at": parse_datetime(ticket.get("ticket_updated_at"), field("ticket_updated_at")),
        "external_assignee_group": opt_str(ticket.get("ticket_group_name")),
    }
    # A rule's payload without {{ticket.status}} says nothing of the status: left out, the router
    # keeps the ticket's own. Said "open", every note or priority change reopened a solved ticket.
    if fields["status"] is None and event_type is EventType.TICKET_CREATED:
        fields["status"] = TicketStatus.NEW
    text = (triggered or "").lower()
    # Whatever the type: a reply sent with a status change ("Send and set as Resolved") is the
    # ticket's response all the same, and the router reads the comment of any event.
    if comment is not None and event_type is not EventType.TICKET_CREATED and _says_comment(text, True):
        fields["comment"] = {
            "body": comment,
            # Freshdesk's {{ticket.latest_public_comment}} template variable holds public comments
            # only: when a private note triggered the webhook, it holds an older comment, not this
            # event's, so no reply. A public note is the comment shown, and the requester sees it.
            "public": "note" not in text or "public" in text,
            # Agents "send replies" and add notes; customers "reply". Default: the requester wrote it.
            "from_agent": any(word in text for word in ("agent", "reply_sent", "note")),
        }
    return [
        AdaptedEvent(
            event_type,
            build_snapshot(fields),
            fields["updated_at"] or now,
        )
    ]
