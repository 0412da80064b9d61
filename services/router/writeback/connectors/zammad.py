"""Zammad: Update ticket (``PUT /api/v1/tickets/{id}``) with an internal note as an article.

The group is set by name (a team's entry in ``groups``), the priority by Zammad's
default names (``3 high``, ``2 normal``, ``1 low`` for P2..P4). Authentication is an access token
(``Authorization: Token token=<secret>``); ``url`` is the Zammad's address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from services.router.writeback.connectors.common import (
    MOVES,
    SETS_PRIORITY,
    GroupOptions,
    OutboundRequest,
    PriorityNames,
    Target,
    api_url,
    json_body,
    json_headers,
    note_text,
    numeric_id,
)

# Zammad's default priorities, as intake reads them (``4 urgent`` is P1 there but no default
# Zammad has it): a P1 is not written unless ``priorities`` names one, since writing ``3 high``
# would come back in Zammad's next webhook as a P2 the source set.
PRIORITIES = {"P2": "3 high", "P3": "2 normal", "P4": "1 low"}


class Options(GroupOptions, PriorityNames):
    groups: dict[str, str] = Field(default_factory=dict, description="Our team -> Zammad group name.")  # type: ignore[assignment]


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    options: Options = target.options
    kind = notification["kind"]
    ticket: dict[str, Any] = {}
    group = options.group_of(notification.get("team"))
    if kind in MOVES and group is not None:
        ticket["group"] = group
    priority = options.priority_name(notification["priority"], PRIORITIES)
    if kind in SETS_PRIORITY and priority is not None:
        ticket["priority"] = priority
    if options.note or not ticket:
        ticket["article"] = {
            "subject": "Ticket router",
            "body": note_text(notification),
            "type": "note",
            "internal": True,
            "content_type": "text/plain",
        }
    url = api_url(target.url, f"/api/v1/tickets/{numeric_id(notification)}")
    headers = json_headers(f"Token token={target.secret}")
    return [OutboundRequest("PUT", url, headers, json_body(ticket))]
