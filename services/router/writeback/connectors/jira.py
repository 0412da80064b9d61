"""Jira (Cloud or Data Center, Jira Service Management included): Edit issue
(``PUT /rest/api/2/issue/{key}``, 204 on success).

The team goes on as a label (``team-<name>``; Jira labels have no spaces), escalations and SLA
events add one too, the priority is set by name, and a comment carries the reasons (API v2 takes
plain text). Authentication is HTTP Basic with ``username`` (the account's email on Cloud) and the
API token as the secret; ``url`` is the site (``https://acme.atlassian.net``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.router.writeback.connectors.common import (
    MOVES,
    SETS_PRIORITY,
    OutboundRequest,
    RenderError,
    Target,
    api_url,
    basic_auth,
    json_body,
    json_headers,
    note_text,
)

PRIORITIES = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low"}
LABELS = {
    "escalation": "router-escalated",
    "sla_warning": "router-sla-warning",
    "sla_breach": "router-sla-breach",
}
ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200, description="The API user (its email on Cloud).")
    priorities: dict[str, str] = Field(
        default_factory=lambda: dict(PRIORITIES), description="P1..P4 -> Jira priority name."
    )
    note: bool = Field(default=True, description="Add a comment saying why.")


def label(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip())[:255]


def render(notification: Mapping[str, Any], target: Target) -> OutboundRequest:
    options: Options = target.options
    kind, key = notification["kind"], str(notification.get("external_id") or "")
    if not ISSUE_KEY.match(key):
        raise RenderError(f"external id {key!r} is not a Jira issue key")
    labels = []
    if kind in MOVES and notification.get("team"):
        labels.append(label(f"team-{notification['team']}"))
    if kind in LABELS:
        labels.append(LABELS[kind])
    document: dict[str, Any] = {}
    if kind in SETS_PRIORITY and notification["priority"] in options.priorities:
        document["fields"] = {"priority": {"name": options.priorities[notification["priority"]]}}
    update: dict[str, Any] = {}
    if labels:
        update["labels"] = [{"add": value} for value in labels]
    if options.note:
        update["comment"] = [{"add": {"body": note_text(notification)}}]
    if update:
        document["update"] = update
    url = api_url(target.url, f"/rest/api/2/issue/{key}")
    return OutboundRequest(
        "PUT", url, json_headers(basic_auth(options.username, target.secret)), json_body(document)
    )
