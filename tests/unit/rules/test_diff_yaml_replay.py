"""Version history helpers: diff, rules-as-code YAML and replay."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.router.rules import (
    RuleSet,
    compile_ruleset,
    diff_rulesets,
    parse_ruleset,
    replay,
    ruleset_from_yaml,
    ruleset_to_dict,
    ruleset_to_yaml,
)
from services.router.rules.schema import MAX_WEIGHT

from .helpers import facts, leaf, rule, ruleset

EXAMPLE = """
timezone: Europe/Berlin
default_team: general
rules:
  - id: vip
    name: VIP customers
    description: Big accounts first
    when: {field: requester.domain, op: in, value: [acme.com, globex.com]}
    actions: {set_priority: urgent, add_tags: [VIP], stop: false}
  - id: night
    name: Night shift
    timezone: America/New_York
    when:
      all:
        - {field: time_of_day, op: between, value: [22:00, 06:30]}
        - not: {field: weekday, op: in, value: [sat, sun]}
        - {field: language, op: in, value: [no, de, on]}
        - {field: created_at, op: after, value: 2024-01-01T00:00:00Z}
        - {field: subject, op: matches, value: '\\bP[0-9]\\b', case_sensitive: true}
    actions:
      assign_pool: {teams: [night-a, night-b], strategy: weighted, weights: {night-a: 2, night-b: 1.5}}
  - id: spam
    name: Spam
    enabled: false
    when: {field: custom.score, op: gte, value: 0.9}
    actions: {route_to_triage: true}
"""


def test_yaml_round_trip_is_stable():
    rs = ruleset_from_yaml(EXAMPLE)
    text = ruleset_to_yaml(rs)
    again = ruleset_from_yaml(text)
    assert again == rs and ruleset_to_yaml(again) == text
    assert ruleset_from_yaml(json.dumps(ruleset_to_dict(rs))) == rs  # JSON is YAML too


def test_json_with_escaped_characters_outside_the_basic_plane_loads_them():
    """json.dumps writes an emoji as a surrogate pair; YAML alone reads two lone surrogates."""
    rule = {"id": "fire", "name": "fire", "when": {"field": "subject", "op": "contains", "value": "🔥 down"}}
    text = json.dumps({"rules": [{**rule, "actions": {"assign_team": "ops"}}]})
    assert "\\ud83d" in text
    loaded = ruleset_from_yaml(text)
    assert loaded.rules[0].when.value == "🔥 down"  # type: ignore[union-attr]


def test_yaml_keeps_what_the_author_wrote():
    rs = ruleset_from_yaml(EXAMPLE)
    night = rs.rules[1].when
    assert night is not None and night.all_ is not None
    times, _, languages, created, _ = night.all_
    assert times.value == ["22:00", "06:30"]  # YAML 1.1 would read 22:00 as the integer 1320
    assert languages.value == ["no", "de", "on"]  # ... and no / on as booleans
    assert created.value == "2024-01-01T00:00:00+00:00"
    assert rs.rules[0].actions.set_priority == "P1" and rs.rules[0].actions.add_tags == ["vip"]
    assert "case_sensitive: false" not in ruleset_to_yaml(rs)  # defaults stay out of the file


def test_a_rule_whose_only_action_is_stop_exports_and_loads_again():
    # `stop: true` is the default: left out, the export said `actions: {}`, which does not load.
    rs = ruleset(rule("spam", leaf("tags", "contains", "spam"), stop=True), rule("noop", None, add_tags=[]))
    text = ruleset_to_yaml(rs)
    assert ruleset_from_yaml(text) == rs and "actions: {}" not in text


# Strings YAML 1.1 and the core loader read differently (1.5e5 is a float only to the latter).
TRICKY = ["1.5e5", "1e5", ".5", "-2.", "10:30", "09:00", "yes", "no", "on", "null", "~", "true", "0x1f", "-"]
text_values = st.one_of(st.sampled_from(TRICKY), st.text(min_size=1, max_size=30))
team_names = st.one_of(
    st.sampled_from(["desk", "1.5e5", "12", "yes"]), st.from_regex(r"\A[a-z0-9][a-z0-9 .:-]{0,8}[a-z0-9]\Z")
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-0.0, 1e300]),
)
custom_values = st.one_of(text_values, numbers, st.booleans())
leaves = st.one_of(
    st.builds(
        lambda field, op, value, sensitive: {
            "field": field,
            "op": op,
            "value": value,
            "case_sensitive": sensitive,
        },
        st.sampled_from(["subject", "text", "channel"]),
        st.sampled_from(["equals", "contains", "starts_with", "ends_with"]),
        text_values,
        st.booleans(),
    ),
    st.builds(
        lambda v: {"field": "channel", "op": "in", "value": v}, st.lists(text_values, min_size=1, max_size=3)
    ),
    st.builds(lambda v: {"field": "custom.x", "op": "equals", "value": v}, custom_values),
    st.builds(lambda v: {"field": "custom.x", "op": "in", "value": v}, st.lists(custom_values, min_size=1)),
    st.builds(lambda v: {"field": "category_confidence", "op": "gte", "value": v}, numbers),
    st.builds(lambda v: {"field": "tags", "op": "contains", "value": v}, text_values),
    st.builds(
        lambda f, v: {"field": f, "op": "exists", "value": v},
        st.sampled_from(["tags", "channel"]),
        st.booleans(),
    ),
    st.builds(
        lambda t: {"field": "time_of_day", "op": "after", "value": t}, st.sampled_from(["09:00", "23:59"])
    ),
    st.builds(lambda v: {"field": "urgency", "op": "gte", "value": v}, st.sampled_from([1, 4, "high"])),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=5,
)


@st.composite
def pools(draw: st.DrawFn) -> dict[str, Any]:
    teams = draw(st.lists(team_names, min_size=1, max_size=3, unique=True))
    strategy = draw(st.sampled_from(["least_loaded", "round_robin", "weighted"]))
    pool: dict[str, Any] = {"teams": teams, "strategy": strategy}
    if strategy == "weighted" or draw(st.booleans()):
        weight = st.floats(min_value=1e-9, max_value=MAX_WEIGHT)
        pool["weights"] = {team: draw(weight) for team in teams}
    return pool


actions = (
    st.fixed_dictionaries(
        {},
        optional={
            "target": st.one_of(
                st.builds(lambda t: {"assign_team": t}, team_names),
                st.builds(lambda p: {"assign_pool": p}, pools()),
                st.builds(lambda b: {"route_to_triage": b}, st.booleans()),
            ),
            "set_priority": st.sampled_from(["P1", "P4", "urgent", 2]),
            "set_urgency": st.sampled_from([1, "low", "critical"]),
            "set_impact": st.sampled_from([2, "medium"]),
            "add_tags": st.lists(text_values, max_size=3),
            "sla_policy": text_values,
            "stop": st.booleans(),  # stop: true alone is the case the export used to write as {}
        },
    )
    .map(lambda d: {**d.pop("target", {}), **d})
    .filter(bool)
)


@st.composite
def rulesets(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,10}\Z"), max_size=4, unique=True))
    rules = []
    for rule_id in ids:
        body: dict[str, Any] = {"id": rule_id, "name": draw(text_values), "actions": draw(actions)}
        if draw(st.booleans()):
            body["when"] = draw(conditions)
        if draw(st.booleans()):
            body["enabled"] = draw(st.booleans())
        if draw(st.booleans()):
            body["description"] = draw(st.text(max_size=50))
        if draw(st.booleans()):
            body["timezone"] = draw(st.sampled_from(["UTC", "Europe/Berlin"]))
        rules.append(body)
    data: dict[str, Any] = {"rules": rules, "timezone": draw(st.sampled_from(["UTC", "America/New_York"]))}
    if draw(st.booleans()):
        data["default_team"] = draw(team_names)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets())
def test_export_then_import_gives_the_same_rule_set(data: dict[str, Any]) -> None:
    """`ticketctl rules export` output loads back (`rules apply`) as the very same rule set."""
    rs: RuleSet = parse_ruleset(data)
    text = ruleset_to_yaml(rs)
    assert ruleset_from_yaml(text) == rs, text


def test_diff():
    old = ruleset(
        rule("a", leaf("channel", "equals", "web"), assign_team="x"),
        rule("b", None, assign_team="y"),
        rule("c", None, add_tags=["t"]),
        rule("d", None, assign_team="z"),
        default_team="general",
    )
    new = ruleset(
        rule("d", None, assign_team="z"),
        rule("a", leaf("channel", "equals", "chat"), assign_team="x", set_priority="P2"),
        rule("c", None, add_tags=["t"]),
        rule("e", None, assign_team="q"),
        default_team="other",
        timezone="Europe/Paris",
    )
    diff = diff_rulesets(old, new)
    assert diff.added == ("e",) and diff.removed == ("b",) and diff.moved == ("d",)
    assert [(c.rule_id, c.keys) for c in diff.changed] == [("a", ("when", "actions.set_priority"))]
    assert diff.settings == {"default_team": ("general", "other"), "timezone": ("UTC", "Europe/Paris")}
    assert diff.render().splitlines() == [
        "default_team: 'general' -> 'other'",
        "timezone: 'UTC' -> 'Europe/Paris'",
        "+ rule e",
        "- rule b",
        "~ rule a: when, actions.set_priority",
        "↕ rule d moved",
    ]
    assert diff.to_dict()["changed"] == {"a": ["when", "actions.set_priority"]}
    same = diff_rulesets(old, old)
    assert same.empty and same.render() == "no changes"


def test_diff_of_a_swap_moves_one_rule():
    old = ruleset(rule("a", None, assign_team="x"), rule("b", None, assign_team="y"))
    new = ruleset(rule("b", None, assign_team="y"), rule("a", None, assign_team="x"))
    diff = diff_rulesets(old, new)
    assert len(diff.moved) == 1 and not diff.changed and not diff.added


def test_replay_counts():
    old = compile_ruleset(
        ruleset(rule("web", leaf("channel", "equals", "web"), assign_team="web"), default_team="general")
    )
    new = compile_ruleset(
        ruleset(
            rule(
                "web",
                leaf("channel", "equals", "web"),
                assign_pool={"teams": ["web-a", "web-b"], "strategy": "round_robin"},
            ),
            rule("chat", leaf("channel", "equals", "chat"), route_to_triage=True),
            default_team="general",
        )
    )
    tickets = [facts(channel=c, ticket_key=f"t{i}") for i, c in enumerate(["web", "web", "chat", "email"])]
    report = replay(old, new, tickets, max_examples=1)
    assert (report.total, report.changed) == (4, 3)
    assert report.before == {"web": 2, "general": 2}
    assert report.after == {"pool:web-a|web-b": 2, "triage": 1, "general": 1}
    assert report.transitions == {("web", "pool:web-a|web-b"): 2, ("general", "triage"): 1}
    [example] = report.examples
    assert (example.ticket_key, example.before, example.after, example.rule_after) == (
        "t0",
        "web",
        "pool:web-a|web-b",
        "web",
    )
    assert report.render().startswith("3 of 4 tickets would change team")
