"""GitHub Issues: Add labels to an issue (``POST /repos/{owner}/{repo}/issues/{number}/labels``).

Intake names a GitHub ticket ``<owner>/<repo>#<number>``; the team, the priority and escalations
or SLA events become labels (``team:<name>``, ``P2``, ``sla:breach``...), which GitHub creates on
first use. Labels are only added: a ticket moved to another team keeps its old team's label.
Authentication is a token (``Authorization: Bearer``); ``url`` is ``https://api.github.com`` (or a
GitHub Enterprise Server's ``https://<host>/api/v3``).
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
    json_body,
    json_headers,
)

ISSUE = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<number>[0-9]+)$")
LABELS = {"escalation": "escalated", "sla_warning": "sla:warning", "sla_breach": "sla:breach"}
API_VERSION = "2022-11-28"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_label_prefix: str = Field(default="team:", max_length=30, description="Put before a team's name.")


def render(notification: Mapping[str, Any], target: Target) -> OutboundRequest:
    options: Options = target.options
    kind, external = notification["kind"], str(notification.get("external_id") or "")
    match = ISSUE.match(external)
    if match is None:
        raise RenderError(f"external id {external!r} is not <owner>/<repo>#<number>")
    labels = []
    if kind in MOVES and notification.get("team"):
        labels.append(f"{options.team_label_prefix}{notification['team']}"[:50])
    if kind in SETS_PRIORITY:
        labels.append(str(notification["priority"]))
    if kind in LABELS:
        labels.append(LABELS[kind])
    if not labels:  # an empty list would remove every label of the issue
        raise RenderError(f"nothing to label for a {kind} notification")
    url = api_url(target.url, f"/repos/{match['repo']}/issues/{match['number']}/labels")
    headers = json_headers(
        f"Bearer {target.secret}",
        Accept="application/vnd.github+json",
        **{"X-GitHub-Api-Version": API_VERSION},
    )
    return OutboundRequest("POST", url, headers, json_body({"labels": labels}))
