"""GitHub Issues: the team, the priority and escalations or SLA events as labels (``team:<name>``,
``P2``, ``escalated``, ``sla:warning``, ``sla:breach``): Add labels
(``POST /repos/{owner}/{repo}/issues/{number}/labels``, which creates a label on first use), after
Remove a label (``DELETE .../labels/{name}``) for the team or priority it replaces, so that intake,
which reads an issue's priority from its first priority label, reads the new one back.

Intake names a GitHub ticket ``<owner>/<repo>#<number>``. Authentication is a token
(``Authorization: Bearer``); ``url`` is ``https://api.github.com`` (or a GitHub Enterprise Server's
``https://<host>/api/v3``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from services.router.writeback.connectors.common import (
    MOVES,
    SETS_PRIORITY,
    OutboundRequest,
    RenderError,
    Target,
    api_url,
    json_body,
    json_headers,
)

ISSUE = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<number>[0-9]+)$")
LABELS = {"escalation": "escalated", "sla_warning": "sla:warning", "sla_breach": "sla:breach"}
API_VERSION = "2022-11-28"
MAX_LABEL = 50  # GitHub refuses longer label names (422)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_label_prefix: str = Field(default="team:", max_length=30, description="Put before a team's name.")


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    options: Options = target.options
    kind, external = notification["kind"], str(notification.get("external_id") or "")
    match = ISSUE.match(external)
    if match is None:
        raise RenderError(f"external id {external!r} is not <owner>/<repo>#<number>")

    def team_label(team: str) -> str:
        return f"{options.team_label_prefix}{team}"[:MAX_LABEL]

    labels, replaced = [], []
    team, previous_team = notification.get("team"), notification.get("previous_team")
    if kind in MOVES and team:
        labels.append(team_label(team))
        if previous_team and previous_team != team:
            replaced.append(team_label(previous_team))
    priority, previous_priority = notification["priority"], notification.get("previous_priority")
    if kind in SETS_PRIORITY:
        labels.append(str(priority))
        if previous_priority and previous_priority != priority:
            replaced.append(str(previous_priority))
    if kind in LABELS:
        labels.append(LABELS[kind])
    if not labels:  # an empty list would remove every label of the issue
        raise RenderError(f"nothing to label for a {kind} notification")
    issue = api_url(target.url, f"/repos/{match['repo']}/issues/{match['number']}/labels")
    headers = json_headers(
        f"Bearer {target.secret}",
        Accept="application/vnd.github+json",
        **{"X-GitHub-Api-Version": API_VERSION},
    )
    removals = [
        OutboundRequest("DELETE", f"{issue}/{quote(name, safe='')}", headers, None, frozenset({404}))
        for name in replaced
    ]
    return [*removals, OutboundRequest("POST", issue, headers, json_body({"labels": labels}))]
