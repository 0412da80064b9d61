"""Property tests: compiled evaluation equals a straightforward reference interpretation."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.router.rules import Condition, compile_ruleset, parse_ruleset
from services.router.rules.conditions import compile_condition

from .helpers import facts

# "e\u0301" is "é" decomposed: the same text, which a rule must match either way (NFC).
WORDS = ["refund", "Refund", "order", "é", "e\u0301", "É", "x", "ab", "Ab", "ß", "SS", "ΟΣ", "ς"]
CHANNELS = ["web", "Web", "chat", "email"]
TAGS = ["vip", "beta", "Ops"]
PLANS: list[Any] = ["gold", "Gold", "silver", 3, True]
PATTERNS = ["^re", r"\d+", "fund$", "o.d", "[ab]+"]

text = st.lists(st.sampled_from([*WORDS, " ", "re: ", "42"]), max_size=4).map("".join)
ticket_kwargs = st.fixed_dictionaries(
    # Short texts over the same words the conditions use, so that operators often hold.
    {"subject": text, "description": text},
    optional={
        "channel": st.sampled_from(CHANNELS),
        "tags": st.lists(st.sampled_from(TAGS), max_size=3),
        "urgency": st.integers(1, 4),
        "category_confidence": st.floats(0, 1),
        "requester_email": st.sampled_from(["a@Acme.com", "b@globex.com", "nobody"]),
        "priority": st.sampled_from(["P1", "P2", "P3"]),
        "custom": st.fixed_dictionaries(
            {
                "plan": st.one_of(
                    st.sampled_from(PLANS), st.lists(st.sampled_from(["gold", "Silver"]), max_size=2)
                )
            }
        ),
    },
)

cs = st.booleans()
string_leaf = st.one_of(
    st.builds(
        lambda f, op, v, c: {"field": f, "op": op, "value": v, "case_sensitive": c},
        st.sampled_from(["subject", "text", "channel", "requester.domain"]),
        st.sampled_from(["equals", "not_equals", "contains", "starts_with", "ends_with"]),
        st.sampled_from([*WORDS, *CHANNELS, "acme.com"]),
        cs,
    ),
    st.builds(
        lambda f, op, v, c: {"field": f, "op": op, "value": v, "case_sensitive": c},
        st.sampled_from(["subject", "channel", "description"]),
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from([*WORDS, *CHANNELS]), min_size=1, max_size=3),
        cs,
    ),
    st.builds(
        lambda f, v, c: {"field": f, "op": "matches", "value": v, "case_sensitive": c},
        st.sampled_from(["subject", "text"]),
        st.sampled_from(PATTERNS),
        cs,
    ),
    st.builds(
        lambda f: {"field": f, "op": "exists"}, st.sampled_from(["subject", "channel", "tags", "urgency"])
    ),
)
other_leaf = st.one_of(
    st.builds(
        lambda op, v: {"field": "tags", "op": op, "value": v}, st.just("contains"), st.sampled_from(TAGS)
    ),
    st.builds(
        lambda op, v: {"field": "tags", "op": op, "value": v},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(TAGS), min_size=1),
    ),
    st.builds(
        lambda op, v: {"field": "urgency", "op": op, "value": v},
        st.sampled_from(["equals", "not_equals", "gt", "gte", "lt", "lte"]),
        st.integers(1, 4),
    ),
    st.builds(
        lambda v: {"field": "urgency", "op": "in", "value": v}, st.lists(st.integers(1, 4), min_size=1)
    ),
    st.builds(
        lambda a, b: {"field": "category_confidence", "op": "between", "value": sorted([a, b])},
        st.floats(0, 1),
        st.floats(0, 1),
    ),
    st.builds(
        lambda op, v: {"field": "priority", "op": op, "value": v},
        st.sampled_from(["equals", "not_equals"]),
        st.sampled_from(["P1", "P2"]),
    ),
    st.builds(
        lambda op, v, c: {"field": "custom.plan", "op": op, "value": v, "case_sensitive": c},
        st.sampled_from(["equals", "not_equals", "contains"]),
        st.sampled_from(PLANS),
        cs,
    ),
    st.builds(
        lambda op, v: {"field": "custom.plan", "op": op, "value": v},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(PLANS), min_size=1, max_size=3),
    ),
)
conditions = st.recursive(
    st.one_of(string_leaf, other_leaf),
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=4)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=4)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=8,
)


def _fact(field: str, kw: dict[str, Any]) -> Any:
    if field == "text":
        subject, description = kw.get("subject", ""), kw.get("description", "")
        return f"{subject}\n{description}" if subject and description else subject or description
    if field == "requester.domain":
        email = kw.get("requester_email") or ""
        return email.rsplit("@", 1)[1].lower() if "@" in email else None
    if field == "tags":
        return list(kw.get("tags", []))
    if field == "custom.plan":
        return kw.get("custom", {}).get("plan")
    if field in ("subject", "description"):
        return kw.get(field, "")
    return kw.get(field)


def reference(cond: dict[str, Any], kw: dict[str, Any]) -> bool:
    """The specification, written the obvious way, independent of the compiler."""
    if "all" in cond:
        return all(reference(c, kw) for c in cond["all"])
    if "any" in cond:
        return any(reference(c, kw) for c in cond["any"])
    if "not" in cond:
        return not reference(cond["not"], kw)
    field, op = cond["field"], cond["op"]
    c: Any = cond.get("value")
    sensitive = cond.get("case_sensitive", False)
    v = _fact(field, kw)
    if isinstance(v, str):  # text is compared in NFC, whoever typed it how
        v = unicodedata.normalize("NFC", v)

    def f(x: Any) -> Any:
        if not isinstance(x, str):
            return x
        x = unicodedata.normalize("NFC", x)
        return x if sensitive else unicodedata.normalize("NFC", x.casefold())

    if op == "exists":
        return v is not None and v != "" and v != []
    if field == "custom.plan":

        def same(a: Any, b: Any) -> bool:
            return isinstance(a, bool) == isinstance(b, bool) and f(a) == f(b)

        items = v if isinstance(v, list) else [v]
        if op == "contains" and not isinstance(v, list):
            return isinstance(v, str) and isinstance(c, str) and f(c) in f(v)
        wanted = c if isinstance(c, list) else [c]
        hit = v is not None and any(same(x, w) for x in items for w in wanted)
        return not hit if op.startswith("not_") else hit
    if field == "tags":
        tags = {f(t) for t in v}
        if op == "contains":
            return f(c) in tags
        return bool(tags & {f(x) for x in c}) == (op == "in")
    if op == "matches":
        # RE2's $ is end of text; Python's also matches before a final newline.
        pattern = c.replace("$", r"\Z")
        return v is not None and re.search(pattern, v, 0 if sensitive else re.IGNORECASE) is not None
    if op in ("not_equals", "not_in"):
        return not reference({**cond, "op": op.removeprefix("not_")}, kw)
    if v is None:
        return False
    if op == "equals":
        return f(v) == f(c)
    if op == "in":
        return f(v) in [f(x) for x in c]
    if op == "contains":
        return f(c) in f(v)
    if op == "starts_with":
        return f(v).startswith(f(c))
    if op == "ends_with":
        return f(v).endswith(f(c))
    if op == "between":
        return c[0] <= v <= c[1]
    return {"gt": v > c, "gte": v >= c, "lt": v < c, "lte": v <= c}[op]


@settings(max_examples=1500, deadline=None)
@given(st.one_of(string_leaf, other_leaf), ticket_kwargs)
def test_compiled_leaf_equals_reference(cond, kw):
    node, _ = compile_condition(Condition.model_validate(cond), "UTC")
    assert node.test(facts(**kw)) is reference(cond, kw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions, ticket_kwargs)
def test_compiled_condition_equals_reference(cond, kw):
    node, _ = compile_condition(Condition.model_validate(cond), "UTC")
    assert node.test(facts(**kw)) is reference(cond, kw)


rules = st.lists(
    st.tuples(
        st.one_of(st.none(), conditions), st.sampled_from(["a", "b", None]), st.booleans(), st.booleans()
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, st.lists(ticket_kwargs, min_size=1, max_size=5))
def test_indexed_fast_path_equals_trace_path_and_reference(rule_specs, tickets):
    data = []
    for index, (when, team, stop, tag) in enumerate(rule_specs):
        actions: dict[str, Any] = {"stop": stop}
        if team:
            actions["assign_team"] = team
        if tag:
            actions["add_tags"] = [f"t{index}"]
        data.append(
            {"id": f"r{index}", "name": f"R{index}", "actions": actions, **({"when": when} if when else {})}
        )
    compiled = compile_ruleset(parse_ruleset({"rules": data, "default_team": "default"}))
    for kw in tickets:
        ticket = facts(**kw)
        fast, traced = compiled.evaluate(ticket), compiled.evaluate(ticket, trace=True)
        assert (fast.target, fast.rule_id, fast.tags, fast.matched_rules, fast.reasons) == (
            traced.target,
            traced.rule_id,
            traced.tags,
            traced.matched_rules,
            traced.reasons,
        )
        # Reference: walk the rules in order, first assignment wins, tags accumulate, stop ends.
        team, tags, matched = None, [], []
        for index, (when, rule_team, stop, tag) in enumerate(rule_specs):
            if when is not None and not reference(when, kw):
                continue
            matched.append(f"r{index}")
            team = team or rule_team
            if tag:
                tags.append(f"t{index}")
            if stop:
                break
        assert fast.target == (team or "default") and list(fast.tags) == tags
        assert list(fast.matched_rules) == matched
