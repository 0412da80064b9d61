"""Validation: every error names the path of the offending key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.router.rules import RuleSet, RuleSetError, compile_ruleset, parse_ruleset, ruleset_from_yaml
from services.router.rules.fields import MAX_PATTERN_CHARS
from services.router.rules.schema import MAX_WEIGHT

from .helpers import leaf, rule


def errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        RuleSet.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


def one_error(when: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    found = errors({"rules": [rule("r", {"all": [leaf("channel", "exists"), when]}, assign_team="t")]})
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("when", "key", "message"),
    [
        (leaf("subjekt", "contains", "x"), "field", "unknown field 'subjekt'"),
        (leaf("custom.", "equals", "x"), "field", "unknown field"),
        (leaf("subject", "gt", 3), "op", "does not apply to string field"),
        (leaf("tags", "equals", "x"), "op", "does not apply to tags field"),
        (leaf("created_at", "gt", 3), "op", "does not apply to datetime field"),
        (leaf("subject", "frobnicates", 3), "op", "unknown operator"),
        (leaf("channel", "in", "web"), "value", "needs a non-empty list"),
        (leaf("channel", "in", []), "value", "needs a non-empty list"),
        (leaf("channel", "equals", 3), "value", "expected a string"),
        (leaf("category_confidence", "gt", "high"), "value", "expected a number"),
        (leaf("category_confidence", "gt", True), "value", "expected a number"),
        (leaf("category_confidence", "between", [3, 1]), "value", "low <= high"),
        # Beyond a double: math.isfinite raised OverflowError (a 500), and orjson could not read it back.
        (leaf("category_confidence", "gt", 10**400), "value", "expected a number"),
        (leaf("custom.score", "in", [1, -(10**400)]), "value", "expected a string, number or boolean"),
        (leaf("urgency", "gte", "extreme"), "value", "low/medium/high/critical"),
        (leaf("priority", "equals", "P9"), "value", "unknown priority"),
        (leaf("status", "equals", "lost"), "value", "expected one of"),
        (leaf("weekday", "equals", "someday"), "value", "mon..sun"),
        (leaf("time_of_day", "after", "25:00"), "value", "HH:MM"),
        (leaf("time_of_day", "between", ["09:00", "09:00"]), "value", "two different times"),
        (leaf("created_at", "after", "2024-05-01T10:00:00"), "value", "UTC offset"),
        (leaf("created_at", "after", "yesterday"), "value", "ISO 8601"),
        (leaf("subject", "matches", "(a"), "value", "regex not supported by RE2"),
        (leaf("subject", "matches", "(?=lookahead)"), "value", "regex not supported by RE2"),
        (leaf("subject", "matches", r"(a)\1"), "value", "regex not supported by RE2"),
        (leaf("subject", "matches", "a" * (MAX_PATTERN_CHARS + 1)), "value", "longer than"),
        (leaf("subject", "contains", ""), "value", "non-empty string"),
        (leaf("subject", "exists", "yes"), "value", "exists takes no value"),
    ],
)
def test_leaf_errors_name_the_key(when, key, message):
    loc, msg = one_error(when)
    assert loc == ("rules", 0, "when", "all", 1, key)
    assert message in msg


def test_structural_errors():
    assert one_error({"all": []})[0] == ("rules", 0, "when", "all", 1, "all")
    loc, msg = one_error({"field": "subject", "op": "contains"})
    assert loc == ("rules", 0, "when", "all", 1) and "'value' is required" in msg
    loc, msg = one_error({"any": [leaf("channel", "exists")], "field": "subject", "op": "exists"})
    assert "exactly one of" in msg
    loc, msg = one_error({"field": "subject", "op": "exists", "colour": "red"})
    assert loc == ("rules", 0, "when", "all", 1, "colour")
    deep: dict[str, Any] = leaf("channel", "exists")
    for _ in range(20):
        deep = {"not": deep}
    assert "nested deeper" in one_error(deep)[1]


def test_ruleset_level_errors():
    assert errors({"rules": [], "timezone": "Mars/Olympus"}) == [
        (("timezone",), "Value error, unknown IANA time zone 'Mars/Olympus'")
    ]
    found = errors({"rules": [{**rule("r", assign_team="t"), "timezone": "Nowhere/Town"}]})
    assert found[0][0] == ("rules", 0, "timezone")
    found = errors({"rules": [rule("a", assign_team="t"), rule("a", assign_team="u")]})
    assert found == [(("rules", 1, "id"), "duplicate rule id 'a' (also the id of rule 0)")]
    assert errors({"rules": [rule("Bad Id!", assign_team="t")]})[0][0] == ("rules", 0, "id")


WEIGHTS = ("rules", 0, "actions", "assign_pool", "weights", "a")


@pytest.mark.parametrize(
    ("actions", "loc", "message"),
    [
        # JSON's 1e999 / Infinity: stored as null, after which no read of the live set validated.
        *(
            (
                {"assign_pool": {"teams": ["a", "b"], "strategy": "weighted", "weights": {"a": w, "b": 1}}},
                WEIGHTS,
                message,
            )
            for w, message in (
                (float("inf"), "finite number"),
                (float("nan"), "finite number"),
                (0, "greater than 0"),
                (-1, "greater than 0"),
                (MAX_WEIGHT * 2, f"less than or equal to {MAX_WEIGHT}"),
            )
        ),
        ({"assign_team": "a", "assign_pool": {"teams": ["b"]}}, ("rules", 0, "actions"), "only one of"),
        ({"assign_team": "a", "route_to_triage": True}, ("rules", 0, "actions"), "only one of"),
        ({}, ("rules", 0, "actions"), "actions is empty"),
        ({"set_priority": "P7"}, ("rules", 0, "actions", "set_priority"), "unknown priority"),
        ({"set_urgency": 9}, ("rules", 0, "actions", "set_urgency"), "1-4"),
        (
            {"assign_pool": {"teams": ["a", "b"], "strategy": "weighted"}},
            ("rules", 0, "actions", "assign_pool"),
            "needs weights",
        ),
        (
            {"assign_pool": {"teams": ["a"], "strategy": "weighted", "weights": {"a": 1, "z": 2}}},
            ("rules", 0, "actions", "assign_pool"),
            "not in the pool",
        ),
        (
            {"assign_pool": {"teams": ["a"], "strategy": "random"}},
            ("rules", 0, "actions", "assign_pool", "strategy"),
            "Input should be",
        ),
        ({"assign_team": "a", "bogus": 1}, ("rules", 0, "actions", "bogus"), "Extra inputs"),
    ],
)
def test_action_errors(actions, loc, message):
    found = errors({"rules": [{"id": "r", "name": "R", "actions": actions}]})
    assert found[0][0] == loc
    assert message in found[0][1]


def test_actions_are_normalised():
    rs = parse_ruleset(
        {
            "rules": [
                rule(
                    "r",
                    set_priority="urgent",
                    set_urgency="high",
                    set_impact=2,
                    add_tags=[" VIP ", "vip", "", "Beta"],
                    stop=False,
                )
            ]
        }
    )
    actions = rs.rules[0].actions
    assert (actions.set_priority, actions.set_urgency, actions.set_impact) == ("P1", 3, 2)
    assert actions.add_tags == ["vip", "beta"]
    assert actions.stop is False and not actions.assigns


def test_rule_set_error_names_rule_index_id_and_field():
    data = {
        "rules": [
            rule("ok", assign_team="a"),
            rule("broken", {"any": [leaf("subject", "gt", 1)]}, assign_team="b"),
        ]
    }
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(data)
    [problem] = info.value.problems
    assert problem.path == "rules[1] (id broken).when.any[0].op"
    assert "does not apply" in problem.message


def test_yaml_errors():
    with pytest.raises(RuleSetError) as info:
        ruleset_from_yaml("rules:\n  - id: a\n    name: [unclosed\n")
    assert info.value.problems[0].path.startswith("line ")
    with pytest.raises(RuleSetError, match="mapping"):
        ruleset_from_yaml("- just a list")
    text = """
rules:
  - id: first
    name: First
    actions: {assign_team: a}
  - id: second
    name: Second
    when: {field: time_of_day, op: after, value: 26:00}
    actions: {assign_team: b}
"""
    with pytest.raises(RuleSetError) as info:
        ruleset_from_yaml(text)
    assert info.value.problems[0].path == "rules[1] (id second).when.value"
    assert "HH:MM" in str(info.value)


def test_a_key_repeated_in_a_yaml_mapping_is_refused_naming_its_line() -> None:
    """YAML mapping keys are unique; PyYAML kept the last of two silently. A rule pasted with a
    second `when` lost its first condition without a word, and matched far more tickets."""
    text = """
rules:
  - id: invoices
    name: Invoices
    when: {field: subject, op: contains, value: invoice}
    actions: {assign_team: billing}
    when: {field: channel, op: equals, value: email}
"""
    with pytest.raises(RuleSetError) as info:
        ruleset_from_yaml(text)
    problem = info.value.problems[0]
    assert problem.path == "line 7, column 5" and "duplicate key 'when'" in problem.message


def test_every_repeated_rule_id_is_named_where_it_repeats() -> None:
    """A ValueError at the rule set's root answered 422 naming "/" with a "Value error, " prefix."""
    ids = ["a", "b", "a", "c", "b", "a"]
    found = errors({"rules": [rule(i, assign_team="t") for i in ids]})
    assert [(loc, msg.startswith("duplicate rule id")) for loc, msg in found] == [
        (("rules", 2, "id"), True),
        (("rules", 4, "id"), True),
        (("rules", 5, "id"), True),
    ]
    assert "rule 1" in found[1][1]


@pytest.mark.parametrize("day", ["mon-fri", "thurs", "mo", "sundays", "weekend", "monday1", 1])
def test_a_weekday_is_an_exact_day_name(day: object) -> None:
    """Any value was cut to its first three letters: "mon-fri" was stored as "mon"."""
    loc, msg = one_error(leaf("weekday", "equals", day))
    assert loc == ("rules", 0, "when", "all", 1, "value") and "mon..sun" in msg
    loc, _ = one_error(leaf("weekday", "in", ["sat", day]))
    assert loc == ("rules", 0, "when", "all", 1, "value")


@pytest.mark.parametrize(
    ("day", "stored"),
    [("mon", "mon"), ("MON", "mon"), ("Monday", "mon"), (" thursday ", "thu"), ("SUN", "sun")],
)
def test_short_and_full_day_names_in_any_case_are_stored_short(day: str, stored: str) -> None:
    ruleset = RuleSet.model_validate({"rules": [rule("r", leaf("weekday", "equals", day), assign_team="t")]})
    condition = ruleset.rules[0].when
    assert condition is not None and condition.value == stored
    # What is stored loads again, unchanged.
    again = RuleSet.model_validate(ruleset.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert again == ruleset


# Measured on 10 KB texts: this one costs ~100-400 ms a search (its DFA outgrows RE2's cache),
# and the router searches every rule's pattern on every ticket.
SLOW_PATTERN = r"(?:\w+\s*){1000}$"


@pytest.mark.parametrize("case_sensitive", [False, True])
@pytest.mark.parametrize("field", ["subject", "tags", "custom.note"])
def test_a_regex_too_costly_to_search_is_refused_naming_the_value(field: str, case_sensitive: bool) -> None:
    loc, msg = one_error({**leaf(field, "matches", SLOW_PATTERN), "case_sensitive": case_sensitive})
    assert loc == ("rules", 0, "when", "all", 1, "value")
    assert "too costly" in msg and "{n}" in msg


@pytest.mark.parametrize(
    "pattern",
    [
        r"\b(?:refund|chargeback|dispute|invoice)\b",
        r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}",
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        r"[0-9a-f]{64}",
        r"(?s).{0,200}refund",
        r"\p{L}{3,}",  # Unicode classes are large programs but cheap to search: still fine
        r"[\p{L}\p{N}]+\s+\p{Lu}{2,}",
        "(?:" + "|".join(f"produkt{i}" for i in range(100)) + ")",  # ~1,000 characters
    ],
)
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    for cs in (False, True):
        parse_ruleset(
            {
                "rules": [
                    rule("r", {**leaf("text", "matches", pattern), "case_sensitive": cs}, assign_team="t")
                ]
            }
        )


def test_a_stored_version_saved_before_the_cost_bound_still_loads() -> None:
    """The bound is checked on saving only: a version saved before it must still load (routers
    read the live set through ``ruleset_of``), else no router could load the rules at all."""
    from services.router.models import RuleSetVersion
    from services.router.rulesets.store import ruleset_of

    when = {"any": [{"not": leaf("subject", "matches", SLOW_PATTERN)}]}  # nested: context reaches it
    document = {"rules": [rule("old", when, assign_team="t")]}
    loaded = ruleset_of(RuleSetVersion(version=7, document=document))
    assert loaded.version == 7 and loaded.rules[0].when is not None
    compile_ruleset(loaded)  # and it compiles: the router routes with it
