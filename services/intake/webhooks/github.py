"""GitHub Issues webhooks (``X-GitHub-Event: issues`` and ``issue_comment``).

``external_id`` is ``<owner>/<repo>#<number>``, stable across renames of the title and unique across
repositories, but not stable across a rename of the repository: its issues go on under new keys
(the README says how to close the old ones; changing the form would split existing tickets).
Priority comes from labels such as ``priority: high``, ``priority/P2`` or ``P1``.
Pull requests share the issue-comment event; they are not tickets and are ignored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shared.events import EventType, Priority, TicketStatus, parse_priority

from .common import (
    as_list,
    build_snapshot,
    map_status,
    opt_str,
    parse_datetime,
    parse_json_object,
    pointer_get,
    require,
    require_object,
    require_str,
    text_or_empty,
)
from .errors import IgnoredEvent, UnmappableError
from .models import AdaptedEvent, SourceConfig, WebhookRequest

_STATUSES = {"open": TicketStatus.OPEN, "closed": TicketStatus.CLOSED}

# action -> (event type, forced status). Actions not listed carry nothing a router cares about
# (pinned, locked, milestoned, typed, ...) and are ignored.
_ISSUE_ACTIONS: dict[str, tuple[EventType, TicketStatus | None]] = {
    "opened": (EventType.TICKET_CREATED, TicketStatus.NEW),
    "edited": (EventType.TICKET_UPDATED, None),
    "labeled": (EventType.TICKET_UPDATED, None),  # labels carry priority and tags
    "unlabeled": (EventType.TICKET_UPDATED, None),
    "assigned": (EventType.TICKET_REASSIGNED_EXTERNALLY, None),
    "unassigned": (EventType.TICKET_REASSIGNED_EXTERNALLY, None),
    "closed": (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
    "reopened": (EventType.TICKET_STATUS_CHANGED, TicketStatus.OPEN),
    # The ticket is gone from this repository either way.
    "deleted": (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
    "transferred": (EventType.TICKET_STATUS_CHANGED, TicketStatus.CLOSED),
}

_AGENT_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
# "priority: high", "priority/P2", "prio-urgent", "Priority 1", or a bare "P1".
_PRIORITY_LABEL = re.compile(
    r"\s*(?:priority|prio|pri)\s*[:/=_\- ]?\s*(\w+)\s*|\s*(p[1-4])\s*", re.IGNORECASE
)


def priority_from_labels(labels: list[str]) -> Priority | None:
    """The priority of the first label that reads as one; None when no label does."""
    for label in labels:
        match = _PRIORITY_LABEL.fullmatch(label)
        if match is None:
            continue
        word = match[1] or match[2]
        # ASCII digits only: \w and str.isdigit take "²" and "①", which int() refuses, and "١",
        # which int() reads but no Priority is named with (a label of either was a 500).
        if word.isascii() and word.isdigit():  # "priority 1" means P1, not Freshdesk's "1 = low"
            if 1 <= int(word) <= 4:
                return Priority(f"P{word}")
            continue
        try:
            found = parse_priority(word)
        except ValueError:
            continue
        if found is not None:
            return found
    return None


def visible_markdown(markdown: str) -> str:
    """``markdown`` without its HTML comments, which GitHub does not show: issue templates guide
    the reporter with them, and they are no part of what was said. A ``<!--`` never closed is text
    (as GitHub shows it inline). Each search starts where the last comment ended: linear."""
    kept: list[str] = []
    pos = 0
    while (start := markdown.find("<!--", pos)) >= 0 and (end := markdown.find("-->", start + 4)) >= 0:
        kept.append(markdown[pos:start])
        pos = end + 3
    kept.append(markdown[pos:])
    return "".join(kept).strip() if pos else markdown


def _label_names(issue: dict[str, Any]) -> list[str]:
    labels = as_list(issue.get("labels"))
    return [str(lb["name"]) for lb in labels if isinstance(lb, dict) and opt_str(lb.get("name"))]


_ORIGINS = {"status": "/issue/state"}


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    event_name = (request.header("X-GitHub-Event") or "").strip()
    if not event_name:
        raise UnmappableError("header:X-GitHub-Event", "required header is missing")
    if event_name == "ping":
        raise IgnoredEvent("GitHub ping")
    if event_name not in ("issues", "issue_comment"):
        raise IgnoredEvent(f"GitHub event {event_name[:50]!r} is not about issues")
    data = parse_json_object(request.body)
    action = require_str(data, "/action")
    issue = require_object(data, "/issue")
    if issue.get("pull_request"):
        raise IgnoredEvent("pull requests are not tickets")

    repo = require_str(data, "/repository/full_name")
    number = require_str(data, "/issue/number")
    labels = _label_names(issue)
    fields: dict[str, Any] = {
        "external_id": f"{repo}#{number}",
        "subject": opt_str(require(data, "/issue/title")) or "",
        "description": visible_markdown(text_or_empty(issue.get("body"), "/issue/body")),
        "status": map_status(issue.get("state"), _STATUSES, "/issue/state", config.options),
        "priority": priority_from_labels(labels),
        "requester": {"name": opt_str(pointer_get(data, "/issue/user/login"))},
        "tags": labels,
        "channel": "github",
        "url": opt_str(issue.get("html_url")),
        "created_at": parse_datetime(issue.get("created_at"), "/issue/created_at"),
        "updated_at": parse_datetime(issue.get("updated_at"), "/issue/updated_at"),
    }
    occurred_at = fields["updated_at"] or now

    if event_name == "issue_comment":
        if action != "created":
            raise IgnoredEvent(f"issue_comment.{action[:30]} changes no ticket")
        comment = require_object(data, "/comment")
        author = opt_str(pointer_get(comment, "/user/login"))
        fields["comment"] = {
            "body": visible_markdown(text_or_empty(comment.get("body"), "/comment/body")),
            "author": author,
            "public": True,
            # A member answering someone; not the requester commenting on their own issue (a
            # maintainer's own issue too), which would meet the first-response target unanswered,
            # nor a bot (an app's or an Action's comment, a triage bot's greeting): no person's answer.
            "from_agent": opt_str(comment.get("author_association")) in _AGENT_ASSOCIATIONS
            and author != opt_str(pointer_get(issue, "/user/login"))
            and opt_str(pointer_get(comment, "/user/type")) != "Bot",
        }
        occurred_at = parse_datetime(comment.get("created_at"), "/comment/created_at") or occurred_at
        return [AdaptedEvent(EventType.TICKET_COMMENTED, build_snapshot(fields, _ORIGINS), occurred_at)]

    if action not in _ISSUE_ACTIONS:
        raise IgnoredEvent(f"issues.{action[:30]} changes no ticket")
    event_type, forced_status = _ISSUE_ACTIONS[action]
    if forced_status is not None:
        fields["status"] = forced_status
    return [AdaptedEvent(event_type, build_snapshot(fields, _ORIGINS), occurred_at)]
