"""A rule naming an SLA policy saved a moment before it: the router loads the policy before the
rule routes anything. Rules and SLA configuration are polled apart, and a ticket routed in
between started its clock on the fallback policy and kept it for good."""

from __future__ import annotations

from services.router.routing.policy import LiveRules
from services.router.rules import RuleSet
from services.router.rulesets.store import save_version
from services.router.slas import service as sla_service
from services.router.slas.live import LiveSla
from tests.integration.router_api.helpers import live_rules, restore_live_rules
from tests.integration.router_sla.helpers import new_id


async def test_the_policies_a_new_rule_set_names_are_loaded_before_it_routes(sessions) -> None:
    name = f"gold-{new_id()[:8]}"
    sla = LiveSla(sessions)
    await sla.refresh()
    rules = LiveRules(sessions, before_applying=sla.refresh)
    await rules.refresh()
    before = await live_rules(sessions)
    policy = {
        "name": name,
        "targets": {"P3": {"first_response": 60, "resolution": 240}},
        # Only for tickets no other test makes: this database is shared.
        "applies_when": {"field": "customer_tier", "op": "equals", "value": name},
    }
    ruleset = {
        "rules": [
            {
                "id": "gold",
                "name": "Gold",
                "when": {"field": "customer_tier", "op": "equals", "value": name},
                "actions": {"sla_policy": name},
            }
        ]
    }
    try:
        async with sessions() as session, session.begin():
            await sla_service.save(session, "policy", name, policy, "t", previous=None)
        async with sessions() as session, session.begin():
            await save_version(session, RuleSet.model_validate(ruleset), "t")
        # The SLA watcher has not polled since: only the rule set's refresh brings the policy.
        assert sla.config.policy_named(name) is None
        assert await rules.refresh()
        assert sla.config.policy_named(name) is not None
    finally:
        await restore_live_rules(sessions, before)
        async with sessions() as session, session.begin():
            previous = await sla_service.latest(session, "policy", name)
            await sla_service.save(session, "policy", name, None, "t", previous=previous)
