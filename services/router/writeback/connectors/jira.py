"""Jira (Cloud or Data Center, Jira Service Management included): Edit issue
(``PUT /rest/api/2/issue/{key}``, 204) for the labels and the priority, then Add comment
(``POST /rest/api/2/issue/{key}/comment``) for the reasons, marked internal, in a ``{noformat}``
block (v2 reads a comment as wiki markup).

The team goes on as a label (``team-<name>``; Jira labels have no spaces; a move removes the
label of the team it leaves), escalations and SLA events add one too, the priority is set by
name. The comment carries the property ``sd.public.comment: {"internal": true}``: on a Service
Management project a comment without it is public, sent to the customer. Authentication is HTTP
Basic with ``username`` (the account's email on Cloud) and the API token as the secret; ``url``
is the site (``https://acme.atlassian.net``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from services.router.writeback.connectors.common import (
    MOVES,
    SETS_PRIORITY,
    OutboundRequest,
    PriorityNames,
    RenderError,
    Target,
    api_url,
    basic_auth,
    json_body,
    json_headers,
    note_text,
)
from shared.http.json_types import JsonBool

PRIORITIES = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low"}
LABELS = {
    "escalation": "router-escalated",
    "sla_warning": "router-sla-warning",
    "sla_breach": "router-sla-breach",
}
ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")
INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]


class Options(PriorityNames):
    username: str = Field(min_length=1, max_length=200, description="The API user (its email on Cloud).")
    note: JsonBool = Field(default=True, description="Add an internal comment saying why.")


_NOFORMAT = re.compile(r"\{noformat", re.IGNORECASE)


def wiki_note(notification: Mapping[str, Any]) -> str:
    """The note as API v2's wiki markup shows it as written: the text in a ``{noformat}`` block
    (a reason's regex is not a link, a macro or bold text), the mark after it."""
    text, mark = note_text(notification).rsplit("\n\n", 1)
    return "{noformat}\n" + _NOFORMAT.sub("(noformat", text) + "\n{noformat}\n\n" + mark


def label(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip())[:255]


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    options: Options = target.options
    kind, key = notification["kind"], str(notification.get("external_id") or "")
    if not ISSUE_KEY.match(key):
        raise RenderError(f"external id {key!r} is not a Jira issue key")
    headers = json_headers(basic_auth(options.username, target.secret))
    labels, removed = [], []
    team, previous_team = notification.get("team"), notification.get("previous_team")
    if kind in MOVES and team:
        labels.append(label(f"team-{team}"))
        # The team it leaves: a ticket moved on must not stay in that team's filters.
        if previous_team and label(f"team-{previous_team}") != labels[0]:
            removed.append(label(f"team-{previous_team}"))
    if kind in LABELS:
        labels.append(LABELS[kind])
    edit: dict[str, Any] = {}
    priority = options.priority_name(notification["priority"], PRIORITIES)
    if kind in SETS_PRIORITY and priority is not None:
        edit["fields"] = {"priority": {"name": priority}}
    if labels:
        edit["update"] = {
            "labels": [*({"remove": value} for value in removed), *({"add": value} for value in labels)]
        }
    issue = api_url(target.url, f"/rest/api/2/issue/{key}")
    requests = [OutboundRequest("PUT", issue, headers, json_body(edit))] if edit else []
    if options.note or not requests:
        comment = {"body": wiki_note(notification), "properties": INTERNAL}
        requests.append(OutboundRequest("POST", issue + "/comment", headers, json_body(comment)))
    return requests
