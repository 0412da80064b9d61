"""Lazy facts: a ticket computes only what its rule set reads, and nothing else changes.

TicketFacts folds text and computes the age on first read; the engine folds what its index needs
inline (regex shortcuts: test_regexes.py). Each test compares against the full, eager
computation: ``values`` holds every fact, and reading each through ``lookup`` computes them all.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_rules import make_ruleset, make_tickets
from services.router.rules import (
    MAX_MATCH_CHARS,
    TicketFacts,
    compile_ruleset,
    facts_from_ticket,
    parse_ruleset,
)
from services.router.rules.fields import parse_level
from shared.events import Priority, Requester, TicketSnapshot, TicketStatus

from .helpers import NOW, compiled, facts, leaf, rule
from .test_properties import conditions, ticket_kwargs


def eager_values(kw: dict[str, Any]) -> dict[str, Any]:
    """Every fact and its case-folded variant, computed up front: the definition of ``values``."""
    now = kw.get("now", NOW)
    created = kw.get("created_at")
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    email = kw.get("requester_email")

    def nfc(text: str) -> str:  # text facts are in NFC, whoever typed them how
        return unicodedata.normalize("NFC", text)

    subject, description = (
        nfc(kw.get("subject", "")[:MAX_MATCH_CHARS]),
        nfc(kw.get("description", "")[:MAX_MATCH_CHARS]),
    )

    def cut(name: str) -> Any:
        value = kw.get(name)
        return None if value is None else nfc(value[:MAX_MATCH_CHARS])

    def custom(value: Any) -> Any:
        if isinstance(value, str):
            return nfc(value[:MAX_MATCH_CHARS])
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, list | tuple):
            kept = [v for v in value if v is None or isinstance(v, str | bool | int | float)]
            return tuple(nfc(v[:MAX_MATCH_CHARS]) if isinstance(v, str) else v for v in kept)
        return None

    def level(name: str) -> Any:
        return None if kw.get(name) is None else parse_level(kw[name])

    raw: dict[str, Any] = {
        "subject": subject,
        "description": description,
        "text": (f"{subject}\n{description}" if subject and description else subject or description)[
            :MAX_MATCH_CHARS
        ],
        "tags": frozenset(nfc(t[:MAX_MATCH_CHARS]) for t in kw.get("tags", ())),
        "channel": cut("channel"),
        "source": cut("source"),
        "status": None if kw.get("status") is None else TicketStatus(kw["status"]).value,
        "requester.email": cut("requester_email"),
        "requester.domain": email.rsplit("@", 1)[1].lower() if email and "@" in email else None,
        "requester.name": cut("requester_name"),
        "organization": cut("organization"),
        "customer_tier": cut("customer_tier"),
        "language": cut("language"),
        "category": cut("category"),
        "category_confidence": kw.get("category_confidence"),
        "urgency": level("urgency"),
        "impact": level("impact"),
        "priority": None if kw.get("priority") is None else Priority(kw["priority"]).value,
        "created_at": created,
        "age_minutes": None if created is None else (now - created).total_seconds() / 60.0,
    }
    for name, value in kw.get("custom", {}).items():
        raw[f"custom.{name}"] = custom(value)

    def fold(value: Any) -> Any:
        if isinstance(value, str):
            return nfc(value.casefold())
        if isinstance(value, frozenset):
            return frozenset(nfc(v.casefold()) for v in value)
        if isinstance(value, tuple):
            return tuple(nfc(v.casefold()) if isinstance(v, str) else v for v in value)
        return value

    return raw | {"~" + name: fold(value) for name, value in raw.items()}


extra_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from([*TicketStatus, "pending"]),
        "impact": st.sampled_from([1, 4, "low", "critical"]),
        "urgency": st.sampled_from([2, "high", "Medium "]),
        "created_at": st.sampled_from([NOW - timedelta(minutes=95), datetime(2024, 5, 6, 9, 0)]),
        "organization": st.sampled_from(["Acme", "ÉCOLE", "E\u0301COLE"]),
        "tags": st.lists(
            st.sampled_from(["Vip", "x" * (MAX_MATCH_CHARS + 3), "beta", "cafe\u0301"]), max_size=3
        ),
        "custom": st.dictionaries(
            st.sampled_from(["plan", "Seats", "meta"]),
            st.one_of(
                st.sampled_from(["Gold", "Malmo\u0308", 5, 2.5, True, None, {"x": 1}]),
                st.lists(st.sampled_from(["A", 1, "O\u0308"])),
            ),
            max_size=3,
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(ticket_kwargs, extra_kwargs)
def test_values_are_every_fact_and_its_folded_variant(kw, extra):
    kw = {**kw, **extra}
    values = facts(**kw).values
    expected = eager_values(kw)
    assert values == expected
    assert list(values) == list(expected)  # same order: facts, then their folded variants


def computed(ticket: TicketFacts) -> TicketFacts:
    """The ticket with every lazy fact computed (as before rules run), each equal to ``values``."""
    for key, value in ticket.values.items():
        assert ticket.lookup[key] == value
    return ticket


def bench_facts(count: int) -> list[TicketFacts]:
    """The bench's tickets as the router builds facts: snapshot plus enrichment (RoutingPolicy.route)."""
    out = []
    for index, spec in enumerate(make_tickets(count)):
        snapshot = TicketSnapshot(
            external_id=str(index),
            subject=spec["subject"],
            description=spec["description"],
            status=spec["status"],
            priority=spec["priority"],
            tags=spec["tags"],
            channel=spec["channel"],
            created_at=spec["created_at"],
            custom_fields=spec["custom"],
            requester=Requester(email=spec["requester_email"], customer_tier=spec["customer_tier"]),
        )
        enrichment = {
            k: spec[k] for k in ("language", "category", "category_confidence", "urgency", "impact")
        }
        out.append(facts_from_ticket(snapshot, spec["source"], spec["now"], **enrichment))
    return out


def test_bench_rule_set_decides_the_same_on_lazy_and_fully_computed_facts():
    rs = compile_ruleset(make_ruleset(200))
    lazy, traced_first = bench_facts(400), bench_facts(400)
    full = [computed(ticket) for ticket in bench_facts(400)]
    decided_by_rule = 0
    for a, b, c in zip(lazy, traced_first, full, strict=True):
        fast = rs.evaluate(a)
        traced = rs.evaluate(b, trace=True)
        assert fast == rs.evaluate(c) and rs.evaluate(b) == fast
        assert traced == rs.evaluate(c, trace=True) == rs.evaluate(a, trace=True)
        assert a.values == b.values == c.values
        decided_by_rule += fast.rule_id is not None
    assert decided_by_rule > 50  # the comparison covers matches, not only the default team


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions, min_size=1, max_size=6), st.lists(ticket_kwargs, min_size=1, max_size=4))
def test_lazy_and_fully_computed_facts_evaluate_alike(whens, tickets):
    rules = [rule(f"r{i}", when, assign_team=f"t{i}", add_tags=[f"g{i}"]) for i, when in enumerate(whens)]
    rs = compile_ruleset(parse_ruleset({"rules": rules, "default_team": "default"}))
    for kw in tickets:
        lazy, full, traced_first = facts(**kw), computed(facts(**kw)), facts(**kw)
        assert full.values == eager_values(kw)
        assert rs.evaluate(traced_first, trace=True) == rs.evaluate(full, trace=True)
        assert rs.evaluate(lazy) == rs.evaluate(full) == rs.evaluate(traced_first)
        assert rs.evaluate(lazy, trace=True) == rs.evaluate(full, trace=True)


@pytest.mark.parametrize("trace", [False, True])
def test_a_rule_set_computes_only_the_facts_it_reads(trace):
    rs = compiled(rule("web", leaf("channel", "equals", "web"), assign_team="w"), default_team="d")
    ticket = facts(subject="Refund", description="Please", tags=["vip"], channel="Web", created_at=NOW)
    assert rs.evaluate(ticket, trace=trace).team == "w"
    computed = set(ticket.lookup)
    assert "~channel" in computed
    assert not computed & {"~subject", "~description", "~text", "~tags", "age_minutes"}
    # Whatever was skipped is still there on demand, and ``values`` stays complete.
    assert ticket.get("text", folded=True) == "refund\nplease" and ticket.values["age_minutes"] == 0.0


def test_age_is_computed_when_a_rule_reads_it():
    rs = compiled(rule("old", leaf("age_minutes", "gt", 60), assign_team="o"), default_team="d")
    old, fresh = (facts(created_at=NOW - timedelta(minutes=m)) for m in (61, 59))
    unknown = facts()
    assert [rs.evaluate(t).team for t in (old, fresh, unknown)] == ["o", "d", "d"]
    assert old.lookup["age_minutes"] == 61.0 and unknown.lookup["age_minutes"] is None


def test_facts_from_ticket_equals_the_keyword_constructor():
    snapshot = TicketSnapshot(
        external_id="7",
        subject="Printer",
        description="Jammed",
        tags=["Ops"],
        channel="web",
        status="pending",
        priority="P3",
        requester=Requester(email="Ann@Initech.com", name="Ann", organization="Initech", customer_tier="pro"),
        custom_fields={"plan": ["Gold", 2]},
        created_at=NOW - timedelta(hours=2),
    )
    built = facts_from_ticket(snapshot, "jira", NOW, language="en", category="hw", urgency="low", impact=3)
    keywords = TicketFacts(
        now=NOW,
        subject="Printer",
        description="Jammed",
        tags=["ops"],
        channel="web",
        source="jira",
        status="pending",
        requester_email="Ann@Initech.com",
        requester_name="Ann",
        organization="Initech",
        customer_tier="pro",
        custom={"plan": ["Gold", 2]},
        language="en",
        category="hw",
        urgency="low",
        impact=3,
        priority="P3",
        created_at=NOW - timedelta(hours=2),
        ticket_key="jira:7",
    )
    assert (built.values, built.ticket_key, built.now) == (keywords.values, keywords.ticket_key, keywords.now)
    assert built.values["age_minutes"] == 120.0 and built.values["~custom.plan"] == ("gold", 2)
