"""The router's pure rules engine: schema, compilation, evaluation, diff, YAML and replay.

No I/O here: storage, the REST API and the consumer live elsewhere and call these functions.
"""

from .diff import RuleChange, RuleSetDiff, diff_rulesets
from .engine import (
    CompiledRuleSet,
    ConditionFailure,
    PoolTarget,
    RoutingOutcome,
    RuleTrace,
    compile_ruleset,
)
from .facts import TicketFacts, facts_from_ticket
from .fields import FIELDS, MAX_MATCH_CHARS, MAX_PATTERN_CHARS, OPS_BY_KIND
from .replay import ReplayChange, ReplayReport, replay
from .schema import Actions, Condition, Pool, Rule, RuleSet
from .serialization import (
    Problem,
    RuleSetError,
    parse_ruleset,
    problems_from_validation,
    ruleset_from_yaml,
    ruleset_to_dict,
    ruleset_to_yaml,
)

__all__ = [
    "FIELDS",
    "MAX_MATCH_CHARS",
    "MAX_PATTERN_CHARS",
    "OPS_BY_KIND",
    "Actions",
    "CompiledRuleSet",
    "Condition",
    "ConditionFailure",
    "Pool",
    "PoolTarget",
    "Problem",
    "ReplayChange",
    "ReplayReport",
    "RoutingOutcome",
    "Rule",
    "RuleChange",
    "RuleSet",
    "RuleSetDiff",
    "RuleSetError",
    "RuleTrace",
    "TicketFacts",
    "compile_ruleset",
    "diff_rulesets",
    "facts_from_ticket",
    "parse_ruleset",
    "problems_from_validation",
    "replay",
    "ruleset_from_yaml",
    "ruleset_to_dict",
    "ruleset_to_yaml",
]
