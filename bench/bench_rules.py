"""Benchmark of the router's rules engine on one core.

    .venv/bin/python bench/bench_rules.py [--rules 200] [--tickets 3000] [--seconds 3] [--json OUT]

Generates a realistic rule set (keyword, domain, channel/category, regex, business-hours, nested,
custom-field and ageing rules; most tickets match late or not at all, so evaluation walks far)
and varied tickets, checks the indexed fast path agrees with the rule-by-rule trace path, then
measures evaluations per CPU-second (one core) with trace off and on. Prints what it measured, nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.router.rules import (
    CompiledRuleSet,
    RuleSet,
    TicketFacts,
    compile_ruleset,
    parse_ruleset,
)

CATEGORIES = [
    "billing",
    "technical",
    "account",
    "shipping",
    "security",
    "sales",
    "legal",
    "onboarding",
    "integrations",
    "mobile",
    "reporting",
    "api",
    "performance",
    "data",
    "compliance",
]
CHANNELS = ["email", "web", "phone", "chat", "api", "social"]
TIERS = ["free", "starter", "pro", "business", "enterprise"]
LANGUAGES = ["en", "de", "fr", "es", "it", "pt", "nl", "ja", "sv", "pl"]
STATUSES = ["new", "open", "pending", "on_hold"]
KEYWORDS = [
    "refund",
    "invoice",
    "chargeback",
    "outage",
    "crash",
    "password",
    "sso",
    "saml",
    "gdpr",
    "export",
    "import",
    "webhook",
    "timeout",
    "latency",
    "billing cycle",
    "downgrade",
    "upgrade",
    "cancel",
    "license",
    "api key",
    "rate limit",
    "certificate",
    "dns",
    "vpn",
    "two-factor",
    "locked out",
    "data loss",
    "backup",
    "restore",
    "migration",
    "integration",
    "salesforce",
    "slack",
    "jira",
    "zendesk",
    "mobile app",
    "android",
    "ios",
    "printer",
    "shipment",
    "tracking",
    "customs",
    "damaged",
    "return label",
    "warranty",
    "contract",
    "renewal",
    "quote",
    "purchase order",
    "tax",
    "vat",
    "receipt",
    "discount",
    "coupon",
    "trial",
    "seat",
    "permissions",
    "audit log",
    "security incident",
    "phishing",
    "vulnerability",
    "penetration test",
    "legal hold",
    "subpoena",
    "accessibility",
    "dark mode",
    "notification",
    "email bounce",
    "spam filter",
]
_FILLER_TEXT = """the a we our your please thanks hello hi team issue problem question since yesterday today
again still not working when after before with without account user users page screen error message
help support update see attached screenshot order customer trying cannot unable get set change new old
work site portal dashboard report weekly monthly settings option"""
FILLER = _FILLER_TEXT.split()
TAGS = [f"tag-{i}" for i in range(60)] + ["vip", "escalated", "beta", "partner", "churn-risk", "internal"]
DOMAINS = [f"company{i}.com" for i in range(400)]
TEAMS = [
    f"team-{name}"
    for name in [
        "billing",
        "tech",
        "accounts",
        "logistics",
        "security",
        "sales",
        "legal",
        "nordics",
        "dach",
        "apac",
        "mobile",
        "platform",
        "night",
        "vip",
        "compliance",
        "integrations",
        "data",
        "enterprise",
    ]
]


def _leaf(field: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    leaf: dict[str, Any] = {"field": field, "op": op, **extra}
    if value is not None:
        leaf["value"] = value
    return leaf


def _condition(rng: random.Random, kind: str) -> dict[str, Any]:
    pick = rng.choice
    if kind == "keywords":
        field = pick(["subject", "text", "description"])
        words = rng.sample(KEYWORDS, rng.randint(1, 4))
        cond: dict[str, Any] = {"any": [_leaf(field, "contains", w) for w in words]}
        if rng.random() < 0.5:
            cond = {"all": [cond, _leaf("category", "in", rng.sample(CATEGORIES, 2))]}
        return cond
    if kind == "domains":
        return _leaf("requester.domain", "in", rng.sample(DOMAINS, rng.randint(3, 20)))
    if kind == "channel":
        return {
            "all": [
                _leaf("channel", "equals", pick(CHANNELS)),
                _leaf("category", "in", rng.sample(CATEGORIES, 2)),
                _leaf("category_confidence", "gte", round(rng.uniform(0.6, 0.95), 2)),
            ]
        }
    if kind == "regex":
        pattern = pick(
            [
                r"order\s*#?\d{7,}",
                r"inv(oice)?[-\s]?\d{6}",
                r"\b(err|error)[-_ ]?5\d\d\b",
                r"case\s+ref\s*:\s*[a-z]{3}-\d+",
                r"^(re|fwd?):\s*urgent",
            ]
        )
        regex = _leaf(pick(["subject", "text"]), "matches", pattern)
        return regex if rng.random() < 0.3 else {"all": [_leaf("tags", "contains", pick(TAGS)), regex]}
    if kind == "hours":
        return {
            "all": [
                _leaf("customer_tier", "equals", pick(TIERS)),
                _leaf("time_of_day", "between", ["18:00", "08:00"]),
                {"not": _leaf("weekday", "in", ["sat", "sun"])},
            ]
        }
    if kind == "nested":
        return {
            "all": [
                {"any": [_leaf("tags", "contains", t) for t in rng.sample(TAGS, 2)]},
                {"not": _leaf("status", "in", ["pending", "on_hold"])},
                _leaf("language", "in", rng.sample(LANGUAGES, 2)),
            ]
        }
    if kind == "custom":
        return {
            "all": [
                _leaf("custom.plan", "equals", f"plan-{rng.randint(0, 30)}"),
                _leaf("urgency", "gte", pick(["high", "critical"])),
            ]
        }
    if kind == "ageing":
        return {
            "all": [
                _leaf("status", "equals", "pending"),
                _leaf("priority", "in", ["P1", "P2"]),
                _leaf("age_minutes", "gt", rng.choice([720, 1440, 2880])),
            ]
        }
    # Unindexable on purpose: evaluated for every ticket.
    return {
        "all": [
            _leaf("urgency", "gte", 4),
            _leaf("impact", "gte", 3),
            {"not": _leaf("requester.email", "ends_with", pick(DOMAINS))},
        ]
    }


def make_ruleset(count: int, seed: int = 7) -> RuleSet:
    rng = random.Random(seed)
    kinds = (
        ["keywords"] * 40
        + ["domains"] * 12
        + ["channel"] * 12
        + ["regex"] * 4
        + ["hours"] * 4
        + ["nested"] * 12
        + ["custom"] * 6
        + ["ageing"] * 5
        + ["unindexed"] * 5
    )
    rules = []
    for index in range(count):
        kind = rng.choice(kinds)
        actions: dict[str, Any] = {"assign_team": rng.choice(TEAMS)}
        if rng.random() < 0.1:
            actions = {"add_tags": [f"auto-{kind}"], "set_priority": rng.choice(["P2", "P3"]), "stop": False}
        elif rng.random() < 0.1:
            actions = {"assign_pool": {"teams": rng.sample(TEAMS, 2), "strategy": "least_loaded"}}
        rules.append(
            {
                "id": f"r{index:04d}-{kind}",
                "name": f"{kind} rule {index}",
                "when": _condition(rng, kind),
                "actions": actions,
            }
        )
    return parse_ruleset({"rules": rules, "default_team": "team-general", "timezone": "Europe/Berlin"})


def description_words(rng: random.Random) -> int:
    """Words of a description, log-normal like real tickets' text: with the subject, a ticket has
    ~290 characters on average, median ~170, p90 ~590, p99 ~1,930 (the public IT helpdesk dataset
    the classifier bench uses: 291, 176, 612, 1,922). Text work (features, language, urgency,
    ``contains`` rules) grows with length, so the length mix decides what a ticket costs."""
    return max(1, round(rng.lognormvariate(math.log(130 / 6.3), 1.15)))  # filler words ~6.3 chars


def make_tickets(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Keyword arguments for TicketFacts: kept raw so the cost of building facts can be measured."""
    rng = random.Random(seed)
    now = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
    tickets = []
    for index in range(count):

        def words(n: int) -> str:
            # Keywords are rare: ~40 % of tickets carry one, the rest is chatter no keyword rule catches.
            return " ".join(
                rng.choice(KEYWORDS) if rng.random() < 0.02 else rng.choice(FILLER) for _ in range(n)
            )

        subject = words(rng.randint(3, 10)).capitalize()
        if rng.random() < 0.03:
            subject = f"Order #{rng.randint(10**6, 10**8)} " + subject
        tickets.append(
            dict(
                now=now + timedelta(minutes=rng.randint(0, 7 * 24 * 60)),
                subject=subject,
                description=words(description_words(rng)),
                tags=rng.sample(TAGS, rng.randint(0, 3)),
                channel=rng.choice(CHANNELS),
                source=rng.choice(["zendesk", "jira", "email", "native"]),
                status=rng.choice(STATUSES),
                requester_email=f"user{index}@{rng.choice(DOMAINS) if rng.random() < 0.5 else 'example.org'}",
                customer_tier=rng.choice(TIERS),
                custom={"plan": f"plan-{rng.randint(0, 200)}", "seats": rng.randint(1, 500)},
                language=rng.choice(LANGUAGES),
                category=rng.choice(CATEGORIES),
                category_confidence=round(rng.random(), 2),
                urgency=rng.randint(1, 4),
                impact=rng.randint(1, 4),
                priority=rng.choice(["P1", "P2", "P3", "P4"]),
                created_at=now - timedelta(minutes=rng.randint(0, 5000)),
                ticket_key=f"bench:{index}",
            )
        )
    return tickets


def measure(
    compiled: CompiledRuleSet, specs: list[dict[str, Any]], seconds: float, trace: bool
) -> tuple[float, float]:
    """(median, best) evaluations per CPU-second over rounds of 250 tickets, for ``seconds``.

    Each round evaluates facts built for it (outside the timing): facts keep what a rule set
    computed on them (folded text, regex results), and the router evaluates a ticket once.
    CPU time of this process, not wall time: on a shared machine other load would otherwise
    be counted as ours. The median is the typical rate, the best what an idle core does.
    """
    rates: list[float] = []
    start = time.perf_counter()
    position = 0
    while time.perf_counter() - start < seconds or len(rates) < 5:
        batch = [TicketFacts(**spec) for spec in specs[position : position + 250]]
        position = (position + 250) % len(specs)
        began = time.process_time()
        for facts in batch:
            compiled.evaluate(facts, trace)
        elapsed = time.process_time() - began
        rates.append(len(batch) / max(elapsed, 1e-9))
    return statistics.median(rates), max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    ruleset = make_ruleset(args.rules)
    started = time.perf_counter()
    compiled = compile_ruleset(ruleset)
    compile_ms = (time.perf_counter() - started) * 1000
    specs = make_tickets(args.tickets)
    tickets = [TicketFacts(**spec) for spec in specs]

    # The indexed fast path must decide exactly what the rule-by-rule trace path decides.
    by_rule: Counter[str] = Counter()
    for facts in tickets:
        fast, traced = compiled.evaluate(facts), compiled.evaluate(facts, trace=True)
        if (fast.target, fast.rule_id, fast.tags, fast.priority) != (
            traced.target,
            traced.rule_id,
            traced.tags,
            traced.priority,
        ):
            raise SystemExit(f"fast and traced outcomes differ for {facts.ticket_key}")
        by_rule["default team" if fast.used_default else "rule"] += 1
    positions = [
        ruleset.rules.index(next(r for r in ruleset.rules if r.id == o.rule_id))
        for o in (compiled.evaluate(f) for f in tickets)
        if o.rule_id
    ]

    per_sec, per_sec_best = measure(compiled, specs, args.seconds, trace=False)
    per_sec_trace, _ = measure(compiled, specs, args.seconds, trace=True)
    started = time.process_time()
    for spec in specs:
        compiled.evaluate(TicketFacts(**spec))
    with_facts = len(specs) / (time.process_time() - started)

    results = {
        "rules": compiled.rule_count,
        "rules_behind_index": compiled.guarded_rule_count,
        "tickets": len(tickets),
        "routed_by_rule": by_rule["rule"],
        "routed_by_default": by_rule["default team"],
        "mean_position_of_deciding_rule": round(sum(positions) / len(positions), 1) if positions else None,
        "compile_ms": round(compile_ms, 1),
        "evaluations_per_cpu_second_median": round(per_sec),
        "evaluations_per_cpu_second_best_round": round(per_sec_best),
        "evaluations_per_cpu_second_trace_median": round(per_sec_trace),
        "facts_plus_evaluations_per_cpu_second": round(with_facts),
        "python": platform.python_version(),
    }
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
