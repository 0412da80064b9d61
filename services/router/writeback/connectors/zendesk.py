"""Zendesk Support: Update Ticket (``PUT /api/v2/tickets/{id}.json``), API token authentication.

An assignment, an escalation or a new priority updates the ticket: the team's group, the priority
and a private comment with the reasons. An SLA warning or breach adds a tag instead (Add Tags,
``PUT /api/v2/tickets/{id}/tags``: Update Ticket's ``tags`` would replace the ticket's own), for
Zendesk's triggers and views to act on. ``url`` is the account's address
(``https://acme.zendesk.com``); ``username`` the API user's email.
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
    Target,
    api_url,
    basic_auth,
    json_body,
    json_headers,
    note_text,
    numeric_id,
)
from shared.http.json_types import JsonInt

PRIORITIES = {"P1": "urgent", "P2": "high", "P3": "normal", "P4": "low"}
TAGS = {"sla_warning": "router_sla_warning", "sla_breach": "router_sla_breach"}


class Options(GroupOptions):
    username: str = Field(min_length=3, max_length=200, description="The API user's email address.")
    groups: dict[str, JsonInt] = Field(default_factory=dict, description="Our team -> Zendesk group id.")  # type: ignore[assignment]


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    options: Options = target.options
    kind, ticket_id = notification["kind"], numeric_id(notification)
    headers = json_headers(basic_auth(f"{options.username}/token", target.secret))
    if kind in TAGS:
        url = api_url(target.url, f"/api/v2/tickets/{ticket_id}/tags")
        return [OutboundRequest("PUT", url, headers, json_body({"tags": [TAGS[kind]]}))]
    ticket: dict[str, Any] = {}
    group = options.group_of(notification.get("team"))
    if kind in MOVES and group is not None:
        ticket["group_id"] = group
    if kind in SETS_PRIORITY:
        ticket["priority"] = PRIORITIES[notification["priority"]]
    if options.note:
        ticket["comment"] = {"body": note_text(notification), "public": False}
    url = api_url(target.url, f"/api/v2/tickets/{ticket_id}.json")
    return [OutboundRequest("PUT", url, headers, json_body({"ticket": ticket}))]
