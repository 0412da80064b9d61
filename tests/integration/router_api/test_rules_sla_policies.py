"""A rule's ``sla_policy`` must name a live SLA policy, and a policy the live rules name stays.

Before, a typo (or a policy deleted later) was saved and then silently ignored at routing time:
the ticket got whichever policy applied instead.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.router.models import RuleSetVersion
from services.router.rulesets.service import live
from services.router.rulesets.store import latest_version_number, save_version
from tests.integration.router_api.helpers import Router, rule

# Applies to no ticket: the database, and so its live policies, is shared with later tests.
NEVER_APPLIES = {"applies_when": {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}}


async def add_policy(router: Router, prefix: str = "pol") -> tuple[str, str]:
    """A new SLA policy: its name and ETag."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = await router.client.put(
        f"/v1/sla/policies/{name}", json={"document": NEVER_APPLIES}, headers=router.editor
    )
    assert created.status_code == 201, created.text
    return name, created.headers["ETag"]


def with_policy(rule_id: str, team: str, policy: str, **extra: Any) -> dict[str, Any]:
    return rule(rule_id, team, rule_id, actions={"assign_team": team, "sla_policy": policy}, **extra)


def errors_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"]: e["message"] for e in response.json()["errors"]}


async def test_rule_sets_naming_unknown_or_deleted_policies_are_refused(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    team = await router_api.add_team("slapol")
    policy, _ = await add_policy(router_api)
    gone, gone_etag = await add_policy(router_api, "gone")
    deleted = await c.delete(f"/v1/sla/policies/{gone}", headers={**editor, "If-Match": gone_etag})
    assert deleted.status_code == 204

    saved = await router_api.put_rules({"rules": [with_policy("named", team, policy)]})
    assert saved.status_code == 200, saved.text

    typo = f"{policy}x"
    refused = await router_api.put_rules(
        {
            "rules": [
                with_policy("named", team, policy),
                with_policy("typo", team, typo),
                with_policy("off", team, typo, enabled=False),  # disabled rules are checked too
                with_policy("was", team, gone),
            ]
        }
    )
    errors = errors_of(refused)
    assert errors == {
        "/rules/1/actions/sla_policy": f"rule 'typo': unknown SLA policy {typo!r}",
        "/rules/2/actions/sla_policy": f"rule 'off': unknown SLA policy {typo!r}",
        "/rules/3/actions/sla_policy": f"rule 'was': deleted SLA policy {gone!r}",
    }
    assert typo in refused.json()["detail"]

    # The single-rule endpoints point into the one rule sent, as for a team it names.
    etag = await router_api.rules_etag()
    added = await c.post(
        "/v1/rules", json=with_policy("extra", team, typo), headers={**editor, "If-Match": etag}
    )
    assert set(errors_of(added)) == {"/actions/sla_policy"}
    patched = await c.patch(
        "/v1/rules/named", json={"actions": {"sla_policy": typo}}, headers={**editor, "If-Match": etag}
    )
    assert set(errors_of(patched)) == {"/actions/sla_policy"}
    assert await router_api.rules_etag() == etag  # nothing was saved


async def test_a_calendar_is_not_a_policy(router_api: Router) -> None:
    """Policies and calendars share a table (and their version numbers): only a policy counts."""
    c, editor = router_api.client, router_api.editor
    team = await router_api.add_team("slacal")
    name = f"twin-{uuid.uuid4().hex[:8]}"
    document = {"timezone": "UTC", "weekly_hours": {"mon-fri": "09:00-17:00"}}
    calendar = await c.put(f"/v1/sla/calendars/{name}", json={"document": document}, headers=editor)
    assert calendar.status_code == 201, calendar.text
    refused = await router_api.put_rules({"rules": [with_policy("cal", team, name)]})
    assert errors_of(refused) == {"/rules/0/actions/sla_policy": f"rule 'cal': unknown SLA policy {name!r}"}

    # A policy of the same name at version 2, beside the calendar's deletion at version 2.
    policy = await c.put(f"/v1/sla/policies/{name}", json={"document": NEVER_APPLIES}, headers=editor)
    assert policy.status_code == 201, policy.text
    dropped = await c.delete(
        f"/v1/sla/calendars/{name}", headers={**editor, "If-Match": calendar.headers["ETag"]}
    )
    assert dropped.status_code == 204, dropped.text
    updated = await c.put(
        f"/v1/sla/policies/{name}",
        json={"document": NEVER_APPLIES, "comment": "v2"},
        headers={**editor, "If-Match": policy.headers["ETag"]},
    )
    assert updated.status_code == 200, updated.text
    saved = await router_api.put_rules({"rules": [with_policy("cal", team, name)]})
    assert saved.status_code == 200, saved.text


async def test_a_calendar_with_over_1000_holidays_is_refused(router_api: Router) -> None:
    """As a team schedule's: an unbounded list was stored, then paid for by every save check."""
    c, editor = router_api.client, router_api.editor
    name = f"many-{uuid.uuid4().hex[:8]}"
    days = [
        f"{year}-{month:02d}-{day:02d}"
        for year in range(2030, 2040)
        for month in range(1, 13)
        for day in range(1, 10)
    ]
    document = {"timezone": "UTC", "weekly_hours": {"mon-fri": "09:00-17:00"}, "holidays": days[:1_001]}
    refused = await c.put(f"/v1/sla/calendars/{name}", json={"document": document}, headers=editor)
    assert set(errors_of(refused)) == {"/document/holidays"}
    assert (await c.get(f"/v1/sla/calendars/{name}", headers=editor)).status_code == 404
    document["holidays"] = days[:1_000]
    made = await c.put(f"/v1/sla/calendars/{name}", json={"document": document}, headers=editor)
    assert made.status_code == 201, made.text
    gone = await c.delete(f"/v1/sla/calendars/{name}", headers={**editor, "If-Match": made.headers["ETag"]})
    assert gone.status_code == 204, gone.text


async def test_a_policy_the_live_rules_name_cannot_be_deleted(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    team = await router_api.add_team("slause")
    policy, etag = await add_policy(router_api)
    named = await router_api.put_rules(
        {
            "rules": [
                with_policy("uses-policy", team, policy),
                rule("other", team, "other"),
                with_policy("also", team, policy, enabled=False),
            ]
        }
    )
    assert named.status_code == 200, named.text
    version = named.json()["version"]

    refused = await c.delete(f"/v1/sla/policies/{policy}", headers={**editor, "If-Match": etag})
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == (
        f"SLA policy {policy!r} is used by the live rule set (version {version}): also, uses-policy"
        "; change those rules first"
    )
    assert (await c.get(f"/v1/sla/policies/{policy}", headers=editor)).headers["ETag"] == etag

    # Once only an older version names it, it can go; rolling back to that version cannot.
    assert (await router_api.put_rules({"rules": [rule("other", team, "other")]})).status_code == 200
    gone = await c.delete(f"/v1/sla/policies/{policy}", headers={**editor, "If-Match": etag})
    assert gone.status_code == 204, gone.text
    rollback = await c.post(
        f"/v1/rules/versions/{version}/rollback",
        headers={**editor, "If-Match": await router_api.rules_etag()},
    )
    assert errors_of(rollback) == {
        "/rules/0/actions/sla_policy": f"rule 'uses-policy': deleted SLA policy {policy!r}",
        "/rules/2/actions/sla_policy": f"rule 'also': deleted SLA policy {policy!r}",
    }


async def test_policies_can_be_deleted_while_the_live_rule_set_is_unreadable(router_api: Router) -> None:
    """A live rule set today's schema cannot read (here a pool weight above 1,000,000, which an
    earlier version accepted) still says which policies it names: a delete is not a 500."""
    c, editor = router_api.client, router_api.editor
    team = await router_api.add_team("slaold")
    used, used_etag = await add_policy(router_api)
    unused, unused_etag = await add_policy(router_api)
    pool = {"teams": [team], "strategy": "weighted", "weights": {team: 5_000_000.0}}
    document = {
        "rules": [
            {"id": "big", "name": "big", "actions": {"assign_pool": pool, "sla_policy": used}},
            "not a rule",
            {"id": "odd", "name": "odd", "actions": ["sla_policy", unused]},
            {"id": "bad", "name": "bad", "actions": {"assign_team": team, "sla_policy": [unused]}},
        ],
        "timezone": "UTC",
    }
    sessions = router_api.app.state.sessions
    async with sessions() as session, session.begin():
        before = await live(session)
        version = await latest_version_number(session) + 1
        session.add(RuleSetVersion(version=version, document=document, author="an earlier version"))
    try:
        async with sessions() as session:
            with pytest.raises(ValidationError):  # unreadable indeed
                await live(session)

        refused = await c.delete(f"/v1/sla/policies/{used}", headers={**editor, "If-Match": used_etag})
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == (
            f"SLA policy {used!r} is used by the live rule set (version {version}): big"
            "; change those rules first"
        )
        gone = await c.delete(f"/v1/sla/policies/{unused}", headers={**editor, "If-Match": unused_etag})
        assert gone.status_code == 204, gone.text
    finally:
        async with sessions() as session, session.begin():  # a readable live set for later tests
            base = before.model_copy(update={"version": version})
            await save_version(session, before.model_copy(update={"version": None}), "tests", base=base)


async def test_drafts_are_simulated_with_a_warning(router_api: Router) -> None:
    """A dry run still evaluates a draft that names no existing policy, and says so."""
    team = await router_api.add_team("slasim")
    draft = {"rules": [with_policy("typo", team, "no-such-policy")]}
    response = await router_api.client.post(
        "/v1/routing/simulate",
        json={"ticket": {"external_id": "1", "subject": "typo"}, "ruleset": draft},
        headers=router_api.viewer,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"]["sla_policy"] == "no-such-policy"
    warning = "/rules/0/actions/sla_policy: rule 'typo': unknown SLA policy 'no-such-policy'"
    assert body["warnings"] == [warning]
