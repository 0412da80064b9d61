"""Write-back connectors: how one queued notification becomes the HTTP requests to its target.

A delivery row stores the notification (``queue.body_for``: the ticket's team, priority, SLA and
the reasons); the target's ``connector`` decides, at send time, what request carries it:

- ``webhook``: the notification itself, POSTed and signed with HMAC-SHA256 (``webhook.py``);
- ``zendesk``, ``freshdesk``, ``zammad``, ``jira``, ``github``, ``intercom``: the helpdesk's own
  REST API, authenticated with the target's secret as its API token, so that the ticket there gets
  the team (a group, a label), the priority and an internal note saying why.

Rendering is a plain function of (notification, target): the sender knows nothing of vendors,
and a change of a target's settings applies to the deliveries still queued for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from services.router.writeback.connectors import freshdesk, github, intercom, jira, webhook, zammad, zendesk
from services.router.writeback.connectors.common import OutboundRequest, RenderError, Target

# A notification may take several requests (a label removed, then the new ones added); they are
# sent in order, and the next attempt sends those the last one did not get through (sender.py).
Render = Callable[[Mapping[str, Any], Target], list[OutboundRequest]]

# connector name -> its options' model
CONNECTORS: dict[str, type[BaseModel]] = {
    "webhook": webhook.Options,
    "zendesk": zendesk.Options,
    "freshdesk": freshdesk.Options,
    "zammad": zammad.Options,
    "jira": jira.Options,
    "github": github.Options,
    "intercom": intercom.Options,
}
# helpdesk connector name -> how it shapes a notification into its API's requests
HELPDESKS: dict[str, Render] = {
    "zendesk": zendesk.render,
    "freshdesk": freshdesk.render,
    "zammad": zammad.render,
    "jira": jira.render,
    "github": github.render,
    "intercom": intercom.render,
}

__all__ = [
    "CONNECTORS",
    "HELPDESKS",
    "OutboundRequest",
    "RenderError",
    "Target",
    "check_options",
    "render",
    "teams_by_group",
]


class OptionsInvalid(ValueError):
    """Options a connector refuses: ``errors`` has each option's path and message."""

    def __init__(self, errors: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc)) or 'options'}: {msg}" for loc, msg in errors))


def check_options(connector: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` validated for ``connector`` (OptionsInvalid naming each option at fault)."""
    try:
        parsed = CONNECTORS[connector].model_validate(dict(options))
    except ValidationError as exc:
        # A check across options (two teams, one group) has no path: it is about them all.
        raise OptionsInvalid(
            [(tuple(e["loc"]), e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
        ) from None
    return parsed.model_dump(mode="json", exclude_defaults=True)


def render(body: str, target: Target, now: float) -> list[OutboundRequest]:
    """The requests that deliver the queued ``body`` to ``target`` at ``now`` (Unix seconds);
    RenderError when it cannot be. A webhook sends the body byte for byte (its signature covers
    exactly what was queued); a helpdesk's API gets the notification re-shaped."""
    if target.connector == "webhook":
        return [webhook.render(body.encode(), target, now)]
    options = CONNECTORS[target.connector].model_validate(dict(target.options))
    notification = orjson.loads(body)
    source = ticket_source(notification)
    if target.source is not None and source is not None and source != target.source:
        # A helpdesk takes a ticket number as its own: another source's 42 is not its 42. Queued
        # for a webhook target that was turned into this helpdesk since, or routed while the
        # target's source was changed (the change's cancellation did not see it yet).
        raise RenderError(
            f"the ticket is source {source!r}'s; this target writes to source {target.source!r}'s helpdesk"
        )
    return HELPDESKS[target.connector](notification, target.with_options(options))


def ticket_source(notification: Any) -> str | None:
    """The source of the ticket a queued notification is about: its ``source``, else its key's
    prefix (a body without one)."""
    if not isinstance(notification, Mapping):
        return None
    source, key = notification.get("source"), notification.get("ticket_key")
    if isinstance(source, str):
        return source
    return key.split(":", 1)[0] if isinstance(key, str) else None


def teams_by_group(options: Mapping[str, Any]) -> dict[str, str]:
    """The helpdesk's group (id or name, as its webhooks report it) -> our team, from a target's
    ``groups`` and ``group_names``; {} without them."""
    teams: dict[str, str] = {}
    for key in ("groups", "group_names"):
        mapping = options.get(key)
        if isinstance(mapping, Mapping):
            for team, group in mapping.items():
                teams.setdefault(str(group), str(team))
    return teams
