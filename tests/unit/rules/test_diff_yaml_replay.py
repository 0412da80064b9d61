"""Version history helpers: diff, rules-as-code YAML and replay."""

from __future__ import annotations

from services.router.rules import (
    compile_ruleset,
    diff_rulesets,
    replay,
    ruleset_from_yaml,
    ruleset_to_dict,
    ruleset_to_yaml,
)

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
    assert ruleset_from_yaml(__import__("json").dumps(ruleset_to_dict(rs))) == rs  # JSON is YAML too


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
