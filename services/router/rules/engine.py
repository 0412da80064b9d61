"""The compiled rule set and its evaluation.

Evaluation order and precedence: enabled rules run top-down. A matching rule applies its
actions; for every single-valued action (team/pool/triage, priority, urgency, impact, SLA
policy) the *first* matching rule that sets it wins, tags accumulate. A matching rule with
``stop`` ends evaluation. When no rule assigned, ``default_team`` applies, else triage.

Fast path: most rules carry cheap necessary conditions (guards: ``channel equals x``,
``tags contains y``, ``subject contains z``...). The best two guards of every rule are indexed
once at compile time: dict lookups for equalities and one RE2 set scan per text field for
literals. Per ticket the engine computes a bitmask of rules whose guards both hold and
evaluates only those, in order.
Trace mode skips the index and evaluates rule by rule, so tests can check both agree.

Facts are lazy (TicketFacts.lookup computes a folded variant or the age on its first read, for
the index or a rule's test alike), so a ticket pays only for what its rule set reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import re2

from shared.events import Priority
from shared.frozen import frozen

from .conditions import Guards, Node, Test, compile_condition, display, present
from .facts import FOLDED, TicketFacts, _fold, fact_key, fold_text
from .regexes import RegexGroups
from .schema import Rule, RuleSet

_SET_MAX_MEM = 64 << 20  # RE2 sets of literals stay far below this; see _literal_set
_SUMMARY_CHARS = 300
_LAYERS = 2  # guards indexed per rule; _candidates ANDs exactly two layers
_MULTI = (frozenset, tuple)  # fact types the index looks up element by element


@dataclass(frozen=True, slots=True)
class PoolTarget:
    teams: tuple[str, ...]
    strategy: str
    weights: Mapping[str, float] | None = None

    @property
    def label(self) -> str:
        return "pool:" + "|".join(self.teams)


@dataclass(frozen=True, slots=True)
class ConditionFailure:
    path: str  # e.g. when.all[1].any[0]
    field: str
    op: str
    expected: str
    actual: str
    reason: str


@dataclass(frozen=True, slots=True)
class RuleTrace:
    index: int  # position in the rule set
    rule_id: str
    rule_name: str
    matched: bool
    failure: ConditionFailure | None = None  # the first failing condition of a non-match
    stopped: bool = False  # this rule ended evaluation


@frozen
class RoutingOutcome:
    team: str | None
    pool: PoolTarget | None
    triage: bool
    priority: Priority | None
    urgency: int | None
    impact: int | None
    tags: tuple[str, ...]
    sla_policy: str | None
    rule_id: str | None  # the rule that decided the assignment (None: default team / triage)
    rule_name: str | None
    matched_rules: tuple[str, ...]
    used_default: bool
    reasons: list[str]
    ruleset_version: int | None
    trace: list[RuleTrace] | None = None

    @property
    def target(self) -> str:
        """'<team>', 'pool:<a>|<b>' or 'triage': one label for counting and diffing."""
        if self.pool is not None:
            return self.pool.label
        return self.team if self.team is not None else "triage"


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    index: int
    id: str
    name: str
    test: Test
    node: Node | None
    reason: str
    assigns: bool
    team: str | None
    pool: PoolTarget | None
    triage: bool
    priority: Priority | None
    urgency: int | None
    impact: int | None
    tags: tuple[str, ...]
    sla_policy: str | None
    stop: bool


def _always(_: TicketFacts) -> bool:
    return True


def _compile_rule(rule: Rule, index: int, timezone: str, groups: RegexGroups) -> tuple[_CompiledRule, Guards]:
    node: Node | None = None
    guard: Guards = []
    if rule.when is not None:
        node, guard = compile_condition(rule.when, rule.timezone or timezone, groups=groups)
    summary = "always" if node is None else node.summary
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[: _SUMMARY_CHARS - 1] + "…"
    a = rule.actions
    pool = None
    if a.assign_pool is not None:
        weights = None if a.assign_pool.weights is None else MappingProxyType(dict(a.assign_pool.weights))
        pool = PoolTarget(tuple(a.assign_pool.teams), a.assign_pool.strategy, weights)
    compiled = _CompiledRule(
        index,
        rule.id,
        rule.name,
        _always if node is None else node.test,
        node,
        f'rule "{rule.name}" matched: {summary}',
        a.assigns,
        a.assign_team,
        pool,
        a.route_to_triage,
        a.set_priority,
        a.set_urgency,
        a.set_impact,
        tuple(a.add_tags),
        a.sla_policy,
        a.stop,
    )
    return compiled, guard


class CompiledRuleSet:
    """A rule set ready to evaluate; build once per version with :func:`compile_ruleset`."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.version = ruleset.version
        self.default_team = ruleset.default_team
        self.timezone = ruleset.timezone
        rules: list[_CompiledRule] = []
        guards: list[Guards] = []
        groups = RegexGroups()
        for index, rule in enumerate(ruleset.rules):
            if rule.enabled:
                compiled, guard = _compile_rule(rule, index, ruleset.timezone, groups)
                rules.append(compiled)
                guards.append(guard)
        groups.finish()
        self._rules = tuple(rules)
        self._build_index(guards)

    @property
    def rule_count(self) -> int:
        return len(self._rules)

    @property
    def guarded_rule_count(self) -> int:
        """How many rules the index can skip; the rest are evaluated for every ticket."""
        return len(self._rules) - bin(self._unguarded & self._rule_bits).count("1")

    def _build_index(self, guards: list[Guards]) -> None:
        # Bit i of layer l sits at l * n + i: one int carries both layers, so a single pass
        # over the tables fills both and `mask & (mask >> n)` ANDs them per rule.
        n = len(guards)
        unguarded = 0
        eq: dict[str, dict[Any, int]] = {}
        lit: dict[str, dict[str, int]] = {}
        for rule_bit, rule_guards in enumerate(guards):
            for layer in range(_LAYERS):
                bit = 1 << (layer * n + rule_bit)
                if layer >= len(rule_guards):
                    unguarded |= bit
                    continue
                for atom in rule_guards[layer]:
                    key = fact_key(atom.field, atom.folded)
                    table = (eq if atom.kind == "eq" else lit).setdefault(key, {})
                    table[atom.key] = table.get(atom.key, 0) | bit
        self._n = n
        self._rule_bits = (1 << n) - 1
        self._unguarded = unguarded
        self._eq_index = tuple(eq.items())
        self._lit_index = tuple((key, *_literal_set(table)) for key, table in lit.items())
        # The folded facts the index reads, with the fact each folds (see _candidates).
        folded = dict.fromkeys(key for key in (*eq, *lit) if key.startswith(FOLDED))
        self._folds = tuple((key, key[len(FOLDED) :]) for key in folded)

    def _candidates(self, facts: TicketFacts) -> int:
        """Bitmask of the rules whose indexed guards hold (unguarded rules always qualify)."""
        mask = self._unguarded
        values = facts.lookup
        # The index reads its folded facts for every ticket, first of all: fold them here in one
        # loop, as FactLookup would on each one's first read, without a __missing__ call per key.
        for key, name in self._folds:
            if key not in values and (raw := values.get(name)) is not None:
                if type(raw) is str:  # fold_text, inlined on ASCII: one call fewer per key and ticket
                    values[key] = raw.lower() if raw.isascii() else fold_text(raw)
                else:
                    values[key] = _fold(raw)
        for key, table in self._eq_index:
            value = values[key]
            if value is None:
                continue
            if isinstance(value, _MULTI):  # tags, multi-select custom fields
                for item in value:
                    mask |= table.get(item, 0)
            else:
                mask |= table.get(value, 0)
        for key, match, masks in self._lit_index:
            text = values[key]
            if text:
                for hit in match(text) or ():  # Set.Match: a list of indices, or None
                    mask |= masks[hit]
        return mask & (mask >> self._n) & self._rule_bits

    def evaluate(self, facts: TicketFacts, trace: bool = False) -> RoutingOutcome:
        if trace:
            return self._evaluate_traced(facts)
        mask = self._candidates(facts)
        rules = self._rules
        matched: list[_CompiledRule] = []
        while mask:
            low = mask & -mask
            mask ^= low
            rule = rules[low.bit_length() - 1]
            if rule.test(facts):
                matched.append(rule)
                if rule.stop:
                    break
        return self._finish(matched, None)

    def _evaluate_traced(self, facts: TicketFacts) -> RoutingOutcome:
        matched: list[_CompiledRule] = []
        steps: list[RuleTrace] = []
        for rule in self._rules:
            if not rule.test(facts):
                failure = None if rule.node is None else explain(rule.node, facts)
                steps.append(RuleTrace(rule.index, rule.id, rule.name, False, failure))
                continue
            matched.append(rule)
            steps.append(RuleTrace(rule.index, rule.id, rule.name, True, None, rule.stop))
            if rule.stop:
                break
        return self._finish(matched, steps)

    def _finish(self, matched: list[_CompiledRule], trace: list[RuleTrace] | None) -> RoutingOutcome:
        """The outcome of the matching rules, in order: the first to set a single value wins."""
        won: _CompiledRule | None = None
        priority: Priority | None = None
        urgency: int | None = None
        impact: int | None = None
        sla: str | None = None
        tags: dict[str, None] = {}
        for rule in matched:
            if won is None and rule.assigns:
                won = rule
            if priority is None:
                priority = rule.priority
            if urgency is None:
                urgency = rule.urgency
            if impact is None:
                impact = rule.impact
            if sla is None:
                sla = rule.sla_policy
            for tag in rule.tags:
                tags[tag] = None
        reasons = [rule.reason for rule in matched]
        team, pool, triage, used_default = None, None, False, False
        if won is not None:
            team, pool, triage = won.team, won.pool, won.triage
        elif self.default_team is not None:
            team, used_default = self.default_team, True
            reasons.append(f'no rule assigned a team: default team "{self.default_team}"')
        else:
            triage = True
            reasons.append("no rule assigned a team and there is no default team: triage")
        return RoutingOutcome(
            team,
            pool,
            triage,
            priority,
            urgency,
            impact,
            tuple(tags),
            sla,
            None if won is None else won.id,
            None if won is None else won.name,
            tuple([rule.id for rule in matched]),
            used_default,
            reasons,
            self.version,
            trace,
        )


def _literal_set(table: dict[str, int]) -> tuple[Any, tuple[int, ...]]:
    """One RE2 set scanning a field once for every literal guard on it: its Match, and the
    rule bits each of its patterns (in order) stands for.

    Only escaped literals go in (never user regexes): their DFA is an Aho-Corasick automaton,
    bounded by the total literal length, so the set cannot run out of memory and silently
    report no match. Matching is case-sensitive on already folded text, mirroring ``in``.
    """
    options = re2.Options()
    options.case_sensitive = True
    options.never_capture = True
    options.log_errors = False
    options.max_mem = _SET_MAX_MEM
    rset = re2.Set.SearchSet(options)
    masks = []
    for pattern, mask in table.items():
        rset.Add(pattern)
        masks.append(mask)
    rset.Compile()
    return rset.Match, tuple(masks)


def explain(node: Node, facts: TicketFacts) -> ConditionFailure | None:
    """The first failing condition under ``node`` and why; None when it holds."""
    if node.test(facts):
        return None
    if node.kind == "all":
        for child in node.children:
            failure = explain(child, facts)
            if failure is not None:
                return failure
    if node.kind == "any":
        first = explain(node.children[0], facts)
        detail = f"; first: {first.reason}" if first else ""
        return ConditionFailure(
            node.path,
            "any",
            "any",
            node.summary,
            "",
            f"none of {len(node.children)} alternatives matched{detail}",
        )
    if node.kind == "not":
        inner = node.children[0]
        actual = _actual(inner, facts) if inner.kind == "leaf" else ""
        return ConditionFailure(
            node.path,
            inner.field or "not",
            "not",
            node.summary,
            actual,
            f"negated condition holds: {inner.summary}",
        )
    actual = _actual(node, facts)
    reason = f"{node.summary}: actual {actual}"
    return ConditionFailure(node.path, node.field, node.op, node.summary, actual, reason)


def _actual(node: Node, facts: TicketFacts) -> str:
    value = None if node.actual is None else node.actual(facts)
    return display(value) if present(value) else "missing"


def compile_ruleset(ruleset: RuleSet) -> CompiledRuleSet:
    return CompiledRuleSet(ruleset)
