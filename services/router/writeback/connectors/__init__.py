"""Write-back connectors: how one queued notification becomes one HTTP request to its target.

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

from pydantic import BaseModel, ValidationError

from services.router.writeback.connectors import freshdesk, github, intercom, jira, webhook, zammad, zendesk
from services.router.writeback.connectors.common import OutboundRequest, RenderError, Target

# A notification may take several requests (a label removed, then the new ones added); they are
# sent in order, and a failure sends the whole list again at the next attempt.
Render = Callable[[Mapping[str, Any], Target], list[OutboundRequest]]

# connector name -> (its options' model, its renderer)
CONNECTORS: dict[str, tuple[type[BaseModel], Render]] = {
    "webhook": (webhook.Options, webhook.render),
    "zendesk": (zendesk.Options, zendesk.render),
    "freshdesk": (freshdesk.Options, freshdesk.render),
    "zammad": (zammad.Options, zammad.render),
    "jira": (jira.Options, jira.render),
    "github": (github.Options, github.render),
    "intercom": (intercom.Options, intercom.render),
}

__all__ = [
    "CONNECTORS",
    "OutboundRequest",
    "RenderError",
    "Target",
    "check_options",
    "render",
    "teams_by_group",
]


def check_options(connector: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` validated for ``connector`` (ValueError naming each option at fault)."""
    model, _ = CONNECTORS[connector]
    try:
        parsed = model.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'options'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(problems) from None
    return parsed.model_dump(mode="json", exclude_defaults=True)


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    """The requests that deliver ``notification`` to ``target`` (RenderError: it cannot be)."""
    model, renderer = CONNECTORS[target.connector]
    return renderer(notification, target.with_options(model.model_validate(dict(target.options))))


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
