"""Evaluation semantics of a compiled rule set: precedence, stop, targets, reasons and traces."""

from __future__ import annotations

import threading
import time

import pytest

from services.router.rules import MAX_MATCH_CHARS, facts_from_ticket
from services.router.rules.fields import compile_regex
from shared.events import Priority, Requester, TicketSnapshot

from .helpers import NOW, compiled, facts, leaf, rule

VIP = leaf("requester.domain", "in", ["acme.com", "globex.com"])
REFUND = leaf("subject", "contains", "refund")


def test_first_matching_assigning_rule_wins():
    rs = compiled(
        rule("refunds", REFUND, assign_team="billing"),
        rule("vip", VIP, assign_team="vip-desk"),
        default_team="general",
    )
    out = rs.evaluate(facts(subject="Refund please", requester_email="a@acme.com"))
    assert (out.team, out.rule_id, out.rule_name, out.matched_rules) == (
        "billing",
        "refunds",
        "Refunds",
        ("refunds",),
    )
    assert out.target == "billing" and not out.triage and not out.used_default


def test_non_stop_rules_contribute_and_let_later_rules_assign():
    rs = compiled(
        rule("vip", VIP, set_priority="P2", add_tags=["vip"], sla_policy="gold", stop=False),
        rule("tag-all", None, add_tags=["seen", "vip"], set_priority="P4", set_urgency="high", stop=False),
        rule("refunds", REFUND, assign_team="billing", set_priority="P3", add_tags=["refund"]),
        rule("never-reached", None, assign_team="nope", add_tags=["late"]),
    )
    out = rs.evaluate(facts(subject="refund", requester_email="a@acme.com"))
    assert out.team == "billing" and out.rule_id == "refunds"
    assert out.priority is Priority.P2  # the first rule to set a value wins
    assert (out.urgency, out.sla_policy) == (3, "gold")
    assert out.tags == ("vip", "seen", "refund")
    assert out.matched_rules == ("vip", "tag-all", "refunds")
    assert out.reasons[0] == 'rule "Vip" matched: requester.domain in [acme.com, globex.com]'


def test_a_stop_rule_without_assignment_ends_evaluation():
    rs = compiled(
        rule("quiet", leaf("channel", "equals", "api"), add_tags=["api"]),
        rule("catch-all", None, assign_team="general"),
        default_team="fallback",
    )
    out = rs.evaluate(facts(channel="api"))
    assert out.team == "fallback" and out.used_default and out.tags == ("api",)
    assert out.rule_id is None and out.reasons[-1] == 'no rule assigned a team: default team "fallback"'


def test_non_stop_assignment_keeps_the_first_target():
    rs = compiled(rule("a", None, assign_team="first", stop=False), rule("b", None, assign_team="second"))
    out = rs.evaluate(facts())
    assert out.team == "first" and out.rule_id == "a" and out.matched_rules == ("a", "b")


def test_default_team_and_triage():
    assert (
        compiled(rule("r", REFUND, assign_team="b"), default_team="general").evaluate(facts()).team
        == "general"
    )
    out = compiled(rule("r", REFUND, assign_team="b")).evaluate(facts())
    assert out.triage and out.team is None and out.target == "triage"
    assert "triage" in out.reasons[-1]


def test_route_to_triage_overrides_default_team():
    out = compiled(
        rule("spam", leaf("tags", "contains", "spam"), route_to_triage=True), default_team="general"
    ).evaluate(facts(tags=["spam"]))
    assert out.triage and out.team is None and out.rule_id == "spam" and not out.used_default


def test_pools():
    pool = {"teams": ["l1-a", "l1-b"], "strategy": "weighted", "weights": {"l1-a": 2, "l1-b": 1}}
    out = compiled(rule("p", None, assign_pool=pool)).evaluate(facts())
    assert out.pool is not None and out.team is None and not out.triage
    assert (out.pool.teams, out.pool.strategy, dict(out.pool.weights or {})) == (
        ("l1-a", "l1-b"),
        "weighted",
        {"l1-a": 2, "l1-b": 1},
    )
    assert out.target == "pool:l1-a|l1-b"


def test_disabled_rules_are_skipped():
    rs = compiled({**rule("off", None, assign_team="x"), "enabled": False}, rule("on", None, assign_team="y"))
    assert rs.evaluate(facts()).team == "y" and rs.rule_count == 1
    assert [t.rule_id for t in rs.evaluate(facts(), trace=True).trace or []] == ["on"]


def test_rule_time_zone_overrides_rule_set_time_zone():
    business_hours = leaf("time_of_day", "between", ["09:00", "17:00"])
    rs = compiled(
        {**rule("tokyo", business_hours, assign_team="apac"), "timezone": "Asia/Tokyo"},
        rule("berlin", business_hours, assign_team="emea"),
        timezone="Europe/Berlin",
    )
    assert rs.evaluate(facts(now=NOW)).team == "emea"  # 19:30 in Tokyo, 12:30 in Berlin
    assert rs.evaluate(facts(now=NOW.replace(hour=1))).team == "apac"  # 10:00 Tokyo, 03:00 Berlin


def test_trace_lists_every_evaluated_rule_with_the_first_failure():
    rs = compiled(
        rule("vip", {"all": [leaf("channel", "equals", "email"), VIP]}, assign_team="vip"),
        rule("either", {"any": [REFUND, leaf("tags", "contains", "billing")]}, assign_team="billing"),
        rule("not-api", {"not": leaf("channel", "equals", "email")}, assign_team="x"),
        rule("web", leaf("channel", "in", ["web", "email"]), assign_team="web"),
        rule("after", None, assign_team="unreached"),
    )
    out = rs.evaluate(facts(channel="email", requester_email="bob@initech.com", subject="Hello"), trace=True)
    assert out.team == "web" and out.trace is not None
    vip, either, not_api, web = out.trace
    assert (vip.rule_id, vip.matched, vip.index) == ("vip", False, 0)
    assert vip.failure is not None
    assert (vip.failure.path, vip.failure.field, vip.failure.op) == ("when.all[1]", "requester.domain", "in")
    assert vip.failure.actual == "'initech.com'"
    assert vip.failure.reason == "requester.domain in [acme.com, globex.com]: actual 'initech.com'"
    assert either.failure is not None and either.failure.op == "any"
    assert (
        either.failure.reason
        == "none of 2 alternatives matched; first: subject contains 'refund': actual 'Hello'"
    )
    assert not_api.failure is not None and not_api.failure.op == "not" and not_api.failure.actual == "'email'"
    assert (web.matched, web.failure, web.stopped) == (True, None, True)
    assert rs.evaluate(facts(channel="email")).trace is None  # fast path builds no trace


def test_trace_truncates_long_actual_values_and_reports_missing():
    rs = compiled(
        rule("r", leaf("subject", "equals", "x"), assign_team="t"),
        rule("s", leaf("language", "equals", "de"), assign_team="t"),
    )
    first, second = rs.evaluate(facts(subject="y" * 5000), trace=True).trace or []
    assert first.failure is not None and len(first.failure.actual) <= 120
    assert second.failure is not None and second.failure.actual == "missing"


def _finishes_within(seconds: float, work) -> list[object]:
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(work()), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), f"did not finish within {seconds} s"
    return result


def test_catastrophic_backtracking_pattern_finishes_fast():
    evil = "a" * 50_000 + "!"
    # RE2 itself, on the whole input: linear time, and no match because of the final "!".
    pattern = compile_regex("(a+)+$", case_sensitive=False)
    assert _finishes_within(2, lambda: pattern.search(evil)) == [None]
    # Through the engine: the fact is cut to MAX_MATCH_CHARS first, which drops the "!",
    # so the run of a's now does match; either way the answer comes back at once.
    rs = compiled(rule("evil", leaf("description", "matches", "(a+)+$"), assign_team="t"), default_team="d")
    ticket = facts(description=evil)
    started = time.perf_counter()
    assert _finishes_within(2, lambda: rs.evaluate(ticket).target) == ["t"]
    assert _finishes_within(2, lambda: rs.evaluate(ticket, trace=True).target) == ["t"]
    assert time.perf_counter() - started < 2
    short = facts(description="a" * 5_000 + "!")
    assert _finishes_within(2, lambda: rs.evaluate(short).target) == ["d"]


def test_only_the_first_max_match_chars_are_examined():
    rs = compiled(
        rule("deep", leaf("description", "contains", "needle"), assign_team="t"),
        rule("deep-rx", leaf("description", "matches", "needle$"), assign_team="t"),
        rule("text", leaf("text", "contains", "needle"), assign_team="t"),
        default_team="d",
    )
    late = facts(description="x" * MAX_MATCH_CHARS + "needle")
    early = facts(description="x" * (MAX_MATCH_CHARS - 6) + "needle")
    assert rs.evaluate(late).team == "d" and rs.evaluate(late, trace=True).team == "d"
    assert rs.evaluate(early).rule_id == "deep"
    assert (
        compiled(rule("rx", leaf("description", "matches", "needle$"), assign_team="t")).evaluate(early).team
        == "t"
    )
    assert len(str(early.values["text"])) == MAX_MATCH_CHARS


@pytest.mark.parametrize(
    ("condition", "fact_kwargs"),
    [
        # Cases where the index could be wrong if guards were not exact necessary conditions.
        (leaf("text", "contains", "end\nstart"), {"subject": "the end", "description": "start"}),
        (leaf("text", "starts_with", "hello"), {"subject": "Hello there"}),
        (leaf("text", "ends_with", "bye"), {"subject": "x", "description": "good BYE"}),
        (leaf("subject", "contains", "É"), {"subject": "café"}),
        (leaf("subject", "contains", "Straße"), {"subject": "STRASSE"}),
        (leaf("text", "contains", "Σ"), {"subject": "x", "description": "ΟΔΟΣ"}),
        (leaf("channel", "equals", "straße"), {"channel": "STRASSE"}),
        # The index reads text in NFC too: decomposed in the ticket or in the rule, é is é.
        (leaf("subject", "contains", "café"), {"subject": "CAFE\u0301"}),
        (leaf("text", "contains", "cafe\u0301"), {"subject": "x", "description": "un café"}),
        (leaf("requester.name", "equals", "Zoë"), {"requester_name": "Zoe\u0308"}),
        (leaf("tags", "contains", "café"), {"tags": ["cafe\u0301"]}),
        (leaf("custom.city", "equals", "Malmö"), {"custom": {"city": "MALMO\u0308"}}),
        (leaf("subject", "contains", "Ab", case_sensitive=True), {"subject": "xAb"}),
        (leaf("custom.products", "in", ["API"]), {"custom": {"products": ["web", "api"]}}),
        (leaf("custom.plan", "equals", "gold"), {"custom": {"plan": "GOLD"}}),
        (leaf("urgency", "in", ["high", 4]), {"urgency": 3}),
        (leaf("priority", "equals", "P2"), {"priority": "P2"}),
        ({"any": [leaf("tags", "in", ["a", "b"]), leaf("subject", "ends_with", "?")]}, {"subject": "why?"}),
        (
            {"all": [leaf("channel", "equals", "web"), leaf("category", "in", ["x", "y"])]},
            {"channel": "WEB", "category": "y"},
        ),
    ],
)
def test_indexed_fast_path_matches(condition, fact_kwargs):
    rs = compiled(rule("target", condition, assign_team="hit"), default_team="miss")
    assert rs.guarded_rule_count == 1
    ticket = facts(**fact_kwargs)
    assert rs.evaluate(ticket).team == "hit"
    assert rs.evaluate(ticket, trace=True).team == "hit"


def test_facts_from_ticket():
    snapshot = TicketSnapshot(
        external_id="42",
        subject="Refund",
        description="Please",
        tags=["VIP ", "beta"],
        channel="email",
        requester=Requester(email="Bob@Acme.COM", name="Bob", organization="Acme", customer_tier="gold"),
        priority="P2",
        custom_fields={"plan": "gold", "seats": 5, "meta": {"x": 1}},
        created_at=NOW.replace(hour=9, minute=0),
        status="open",
    )
    ticket = facts_from_ticket(
        snapshot,
        "zendesk",
        NOW,
        language="en",
        category="billing",
        category_confidence=0.9,
        urgency="high",
        impact=2,
    )
    v = ticket.values
    assert ticket.ticket_key == "zendesk:42"
    assert (v["requester.domain"], v["requester.email"], v["~requester.email"]) == (
        "acme.com",
        "Bob@Acme.COM",
        "bob@acme.com",
    )
    assert v["tags"] == frozenset({"vip", "beta"}) and v["text"] == "Refund\nPlease"
    assert (v["source"], v["status"], v["priority"], v["urgency"], v["impact"]) == (
        "zendesk",
        "open",
        "P2",
        3,
        2,
    )
    assert (v["custom.plan"], v["custom.seats"], v["custom.meta"]) == ("gold", 5, None)
    assert v["age_minutes"] == 90.0 and ticket.local_time("Europe/Berlin") == (12 * 60 + 30, "mon")
    rs = compiled(
        rule(
            "vip",
            {
                "all": [
                    VIP,
                    leaf("category", "equals", "billing"),
                    leaf("custom.seats", "lt", 10),
                    leaf("age_minutes", "gte", 90),
                ]
            },
            assign_team="vip",
        )
    )
    assert rs.evaluate(ticket).team == "vip"
