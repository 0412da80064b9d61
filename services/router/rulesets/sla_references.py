"""The SLA policies a rule set names (``actions.sla_policy``), checked like the teams it names.

A rule set is saved only when every policy its rules name exists (``check_references`` in
``service``, as for teams with ``teams.states``); a policy the live rule set names cannot be
deleted (409 naming the rules), as a team cannot. Otherwise a typo or a deleted policy would be
silently ignored at routing time, and the ticket would get the first policy that applies instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.router.rules import RuleSet
from services.router.rulesets.store import latest
from services.router.slas.models import SlaConfigVersion
from services.router.slas.service import newest_versions

POLICY = "policy"  # SlaConfigVersion.kind of SLA policies


async def policy_states(session: AsyncSession) -> dict[str, bool]:
    """Every SLA policy ever saved: name -> live (False: its newest version is a deletion).

    A live policy that an earlier version stored and today's checks refuse still exists: the
    routers leave it out (and log it) until it is saved again, and saving it again is the fix."""
    rows = await session.execute(
        newest_versions(POLICY).with_only_columns(SlaConfigVersion.name, SlaConfigVersion.deleted)
    )
    return {name: not deleted for name, deleted in rows}


def policy_problem(policies: Mapping[str, bool], policy: str) -> str | None:
    """Why ``policy`` cannot be named ("unknown SLA policy", "deleted SLA policy"), or None."""
    if policies.get(policy):
        return None
    return "deleted SLA policy" if policy in policies else "unknown SLA policy"


def policy_references(ruleset: RuleSet) -> dict[str, list[tuple[str, str]]]:
    """policy -> [(JSON pointer, rule id)] for every rule that names it (enabled or not)."""
    refs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for index, rule in enumerate(ruleset.rules):
        if rule.actions.sla_policy is not None:
            refs[rule.actions.sla_policy].append((f"/rules/{index}/actions/sla_policy", rule.id))
    return refs


def stored_policy_references(document: Any) -> dict[str, list[tuple[str, str]]]:
    """``policy_references`` of a stored rule-set document, read as JSON rather than as a
    :class:`RuleSet`: a version stored by an earlier release may be one today's model refuses
    (a pool weight out of bounds, say), and its policies must not stop being found (or a policy
    deletion turn into a 500) for that. Entries of an unexpected shape name no policy."""
    refs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    rules = document.get("rules") if isinstance(document, dict) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, dict):
            continue
        actions = rule.get("actions")
        policy = actions.get("sla_policy") if isinstance(actions, dict) else None
        if isinstance(policy, str):
            rule_id = rule.get("id")
            name = rule_id if isinstance(rule_id, str) else f"/rules/{index}"
            refs[policy].append((f"/rules/{index}/actions/sla_policy", name))
    return refs


async def policy_in_use(session: AsyncSession, policy: str) -> str | None:
    """Why ``policy`` cannot be deleted (the live rules that name it), or None."""
    row = await latest(session)
    if row is None:
        return None
    places = stored_policy_references(row.document).get(policy)
    if not places:
        return None
    ids = ", ".join(sorted({rule_id for _, rule_id in places}))
    return (
        f"SLA policy {policy!r} is used by the live rule set (version {row.version}): {ids}"
        "; change those rules first"
    )
