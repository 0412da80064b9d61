"""Our own ticket JSON, used by sources that speak the contract directly and by ``POST /v1/tickets``.

The body is a :class:`~shared.events.TicketSnapshot` with a few conveniences: an optional ``source``
(ignored: the configured source name wins), ``status`` may be ``"reopened"``, ``priority`` may be any
vendor word :func:`~shared.events.parse_priority` knows. Unknown fields are rejected (422).
The event type follows the status: solved/closed and open/reopened are status changes, a ``comment``
makes a comment event, anything else is a creation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.events import EventType, TicketStatus

from .common import build_snapshot, map_priority, map_status, parse_json_object, require_str
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_STATUS_CHANGES = frozenset({TicketStatus.SOLVED, TicketStatus.CLOSED, TicketStatus.OPEN})


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    data = parse_json_object(request.body)
    require_str(data, "/external_id")
    fields: dict[str, Any] = {k: v for k, v in data.items() if k != "source"}
    if "status" in fields:
        fields["status"] = map_status(fields["status"], {}, "/status", config.options)
    if "priority" in fields:
        fields["priority"] = map_priority(fields["priority"], {}, "/priority", config.options)
    if isinstance(fields.get("external_id"), int) and not isinstance(fields["external_id"], bool):
        fields["external_id"] = str(fields["external_id"])
    snapshot = build_snapshot(fields)
    if snapshot.comment is not None:
        event_type = EventType.TICKET_COMMENTED
    elif "status" in data and snapshot.status in _STATUS_CHANGES:
        event_type = EventType.TICKET_STATUS_CHANGED
    else:
        event_type = EventType.TICKET_CREATED
    return [AdaptedEvent(event_type, snapshot, snapshot.updated_at or snapshot.created_at or now)]
