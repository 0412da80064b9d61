"""Small builders shared by the rules engine tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.router.rules import CompiledRuleSet, RuleSet, TicketFacts, compile_ruleset, parse_ruleset
from services.router.rules.conditions import compile_condition
from services.router.rules.schema import Condition

# A Monday, 10:30 UTC (12:30 in Berlin, summer time).
NOW = datetime(2024, 5, 6, 10, 30, tzinfo=UTC)


def facts(**kwargs: Any) -> TicketFacts:
    kwargs.setdefault("now", NOW)
    return TicketFacts(**kwargs)


def holds(condition: dict[str, Any], timezone: str = "UTC", **fact_kwargs: Any) -> bool:
    """Compile one condition and evaluate it; also checks the explanation agrees."""
    from services.router.rules.engine import explain

    node, _ = compile_condition(Condition.model_validate(condition), timezone)
    ticket = facts(**fact_kwargs)
    result = node.test(ticket)
    assert (explain(node, ticket) is None) == result
    return result


def leaf(field: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "op": op, **extra}
    if value is not None:
        out["value"] = value
    return out


def rule(rule_id: str, when: dict[str, Any] | None = None, **actions: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rule_id, "name": rule_id.replace("-", " ").title(), "actions": actions}
    if when is not None:
        out["when"] = when
    return out


def ruleset(*rules: dict[str, Any], **settings: Any) -> RuleSet:
    return parse_ruleset({"rules": list(rules), **settings})


def compiled(*rules: dict[str, Any], **settings: Any) -> CompiledRuleSet:
    return compile_ruleset(ruleset(*rules, **settings))
