"""``matches`` shortcuts (regexes.py): searching UTF-8 bytes, the per-ticket memo, grouped patterns.

Each must decide exactly what searching every pattern on its own, on the str, decides.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.bench_rules import make_ruleset
from services.router.rules import compile_ruleset
from services.router.rules.fields import compile_regex
from services.router.rules.regexes import RegexGroups

from .helpers import compiled, facts, leaf, rule
from .test_lazy_facts import bench_facts
from .test_properties import PATTERNS

# Patterns whose meaning could change inside an alternation if it were built carelessly:
# inline flags, anchors, top-level |, quoting (an unterminated \Q swallows what follows).
TRICKY = [
    *PATTERNS,
    "(?i)ORDER",
    "(?-i:Ab)",
    "a|b",
    r"\Qx)\E",
    r"\bé",
    "^$",
    "x*",
    r"(re|fw):\s*",
    r"\Qa.c",
]
texts = st.text(alphabet=st.sampled_from(list("abrefundoxAB0123 :.\n)éÉcO")), max_size=20)


def tagging(tag: str, field: str, pattern: str, case_sensitive: bool) -> dict[str, Any]:
    when = leaf(field, "matches", pattern, case_sensitive=case_sensitive)
    return rule(tag, when, add_tags=[tag], stop=False)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([*TRICKY, "(?s).", "x+y"]), st.booleans(), st.text(max_size=30))
def test_search_on_utf8_bytes_equals_search_on_str(pattern, case_sensitive, text):
    rx = compile_regex(pattern, case_sensitive)  # rules search TicketFacts.utf8, not the str
    assert (rx.search(text.encode()) is not None) is (rx.search(text) is not None)


specs = st.lists(
    st.tuples(st.sampled_from(["subject", "text", "description"]), st.sampled_from(TRICKY), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(specs, texts, texts)
def test_grouped_patterns_decide_like_each_pattern_alone(specs, subject, description):
    rs = compiled(*(tagging(f"t{i}", *spec) for i, spec in enumerate(specs)), default_team="d")
    text = f"{subject}\n{description}" if subject and description else subject or description
    fact = {"subject": subject, "description": description, "text": text}
    expected = tuple(
        f"t{i}"
        for i, (field, pattern, cs) in enumerate(specs)
        if compile_regex(pattern, cs).search(fact[field]) is not None
    )
    ticket = facts(subject=subject, description=description)
    assert rs.evaluate(ticket).tags == expected
    assert rs.evaluate(facts(subject=subject, description=description), trace=True).tags == expected


def test_a_group_is_searched_once_per_ticket():
    rs = compiled(*(tagging(f"t{i}", "subject", p, False) for i, p in enumerate(PATTERNS)), default_team="d")
    ticket = facts(subject="nothing here")
    assert rs.evaluate(ticket).tags == ()
    groups = {key: found for key, found in ticket.lookup.items() if key.startswith("\0\0")}
    assert list(groups.values()) == [True]  # one alternation search: none of the five matched
    assert rs.evaluate(facts(subject="re: 42")).tags == ("t0", "t1")


def test_a_quoting_pattern_is_searched_on_its_own():
    groups = RegexGroups()
    quoted, other = groups.add("subject", False, r"\Qa.c"), groups.add("subject", False, "b")
    groups.finish()  # in (?:\Qa.c)|(?:b) the quote would swallow the rest
    assert quoted is not other and quoted.rx is None
    rs = compiled(tagging("q", "subject", r"\Qa.c", False), tagging("b", "subject", "b", False))
    assert [rs.evaluate(facts(subject=s)).tags for s in ("A.C", "abc", "xyz")] == [("q",), ("b",), ()]
    # Found by the property test above: the alternation of these three compiles (the last
    # pattern's "\E)" ends the first one's quote and closes its group) and matched nothing.
    specs = [(r"\Qa.c", "t0"), ("a|b", "t1"), (r"\Qx)\E", "t2")]
    rs = compiled(*(tagging(tag, "text", pattern, False) for pattern, tag in specs), default_team="d")
    assert rs.evaluate(facts(subject="", description="A")).tags == ("t1",)


def test_rule_sets_sharing_a_ticket_keep_their_groups_apart():
    old = compiled(tagging("a", "subject", "alpha", False), tagging("b", "subject", "beta", False))
    new = compiled(tagging("a", "subject", "alpha", False), tagging("c", "subject", "gamma", False))
    ticket = facts(subject="Gamma ray")  # a replay evaluates both rule sets on the same facts
    assert old.evaluate(ticket).tags == () and new.evaluate(ticket).tags == ("c",)
    assert old.evaluate(ticket, trace=True).tags == ()


def test_bench_rule_set_decides_the_same_without_groups(monkeypatch):
    document = make_ruleset(200)
    grouped = compile_ruleset(document)
    monkeypatch.setattr(RegexGroups, "finish", lambda self: None)  # no alternation: each pattern alone
    alone = compile_ruleset(document)
    group_searches = {True: 0, False: 0}
    for a, b in zip(bench_facts(200), bench_facts(200), strict=True):
        assert grouped.evaluate(a) == alone.evaluate(b)
        assert grouped.evaluate(a, trace=True) == alone.evaluate(b, trace=True)
        for grouped_run, ticket in ((True, a), (False, b)):
            group_searches[grouped_run] += sum(key.startswith("\0\0") for key in ticket.lookup)
    assert group_searches[True] > 0 and group_searches[False] == 0  # the two really differ


def test_shared_regex_results_are_kept_apart_by_field_and_case():
    order = r"ORDER \d+"
    rs = compiled(
        tagging("a", "subject", order, True),
        tagging("b", "subject", order, False),
        tagging("c", "text", order, True),
        tagging("d", "subject", order, True),  # the same test as "a": answered from the ticket's memo
        tagging("e", "description", order, False),
        default_team="d",
    )
    for trace in (False, True):
        ticket = facts(subject="order 12", description="ORDER 7")
        assert rs.evaluate(ticket, trace=trace).tags == ("b", "c", "e")
        assert rs.evaluate(ticket, trace=not trace).tags == ("b", "c", "e")
        assert rs.evaluate(facts(subject="ORDER 1"), trace=trace).tags == ("a", "b", "c", "d")
