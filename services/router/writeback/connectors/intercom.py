"""Intercom: a move assigns the conversation to the team's inbox (``POST /conversations/{id}/parts``,
``message_type: assignment``, ``type: team``, without a body: an assignment's body may reach the
customer); the reasons, and any other notification, go in an internal note
(``POST /conversations/{id}/reply``, ``message_type: note``, whose body is HTML). Intercom
conversations have no priority levels to set.

``admin_id`` is the admin the parts are written as; ``groups`` maps our teams to Intercom team
ids. Authentication is an access token (``Authorization: Bearer``); ``url`` is
``https://api.intercom.io`` (or the EU or Australian region's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from services.router.writeback.connectors.common import (
    MOVES,
    GroupOptions,
    OutboundRequest,
    Target,
    api_url,
    external_id,
    json_body,
    json_headers,
    note_html,
)

API_VERSION = "2.11"


class Options(GroupOptions):
    admin_id: str = Field(min_length=1, max_length=50, description="The admin who writes the parts.")
    groups: dict[str, str] = Field(default_factory=dict, description="Our team -> Intercom team id.")  # type: ignore[assignment]


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    options: Options = target.options
    conversation = api_url(target.url, f"/conversations/{external_id(notification)}")
    headers = json_headers(f"Bearer {target.secret}", **{"Intercom-Version": API_VERSION})
    requests = []
    group = options.group_of(notification.get("team"))
    if notification["kind"] in MOVES and group is not None:
        assign = {
            "message_type": "assignment",
            "type": "team",
            "admin_id": options.admin_id,
            "assignee_id": group,
        }
        requests.append(OutboundRequest("POST", f"{conversation}/parts", headers, json_body(assign)))
    if options.note or not requests:
        note = {
            "message_type": "note",
            "type": "admin",
            "admin_id": options.admin_id,
            "body": note_html(notification),  # Intercom reads notes as HTML
        }
        requests.append(OutboundRequest("POST", f"{conversation}/reply", headers, json_body(note)))
    return requests
