"""Compile a validated Condition tree into closures, explanations and index guards.

Semantics worth knowing (the reference tests encode the same):

* a missing fact (None, or an empty string / tag set for ``exists``) fails every operator except
  ``not_equals`` and ``not_in``, which hold;
* ``before X`` is ``< X`` and ``after X`` is ``>= X``, so the two split the timeline;
  ``between [a, b]`` is ``a <= v <= b`` for numbers and ``a <= t < b`` for times of day,
  wrapping past midnight when ``a > b``;
* string operators compare case-folded text unless ``case_sensitive`` (``str.casefold``: "ß"
  is "SS"; regexes use RE2's own, simpler folding);
* a list-valued custom field matches equals / in / contains when any element does;
* a custom field's string that reads as a number equals a number constant of that value (equals,
  in and their negations), as the order operators compare it; a string constant stays text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from .facts import Fact, TicketFacts, _fold, fact_key, nfc
from .fields import Kind, compile_regex, field_kind, is_number, parse_datetime, parse_time_of_day
from .regexes import RegexGroups, regex_test
from .schema import Condition

Test = Callable[[TicketFacts], bool]
Getter = Callable[[TicketFacts], Fact]
_DISPLAY_CHARS = 120


@dataclass(frozen=True, slots=True)
class Atom:
    """A cheap necessary condition the engine checks for all rules at once.

    ``eq``: the fact (or, for tags, one of its elements) equals ``key``; ``lit``: the fact
    matches the RE2 pattern ``key`` (an escaped literal, possibly anchored).
    """

    kind: str
    field: str
    folded: bool
    key: Any


Guard = tuple[Atom, ...]  # a disjunction: the rule can only match if one atom holds
Guards = list[Guard]  # a conjunction of guards, best first; empty: nothing to index


@dataclass(frozen=True, slots=True)
class Node:
    """A compiled condition: ``test`` for the fast path, the rest to explain a failure."""

    kind: str  # all | any | not | leaf
    test: Test
    children: tuple[Node, ...]
    summary: str
    path: str
    field: str = ""
    op: str = ""
    actual: Getter | None = None


def render(cond: Condition) -> str:
    """Human-readable form, used in reasons and traces."""
    if cond.all_ is not None:
        return " and ".join(_paren(c) for c in cond.all_)
    if cond.any_ is not None:
        return " or ".join(_paren(c) for c in cond.any_)
    if cond.not_ is not None:
        return f"not ({render(cond.not_)})"
    text = f"{cond.field} {cond.op}"
    if cond.value is not None:
        text += f" {display(cond.value)}"
    return text + (" (case-sensitive)" if cond.case_sensitive else "")


def _paren(cond: Condition) -> str:
    return f"({render(cond)})" if cond.all_ is not None or cond.any_ is not None else render(cond)


def display(value: object) -> str:
    if isinstance(value, frozenset):
        value = sorted(value, key=str)
    if isinstance(value, list | tuple):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _DISPLAY_CHARS else text[: _DISPLAY_CHARS - 1] + "…"


def present(value: Fact) -> bool:
    return value is not None and value != "" and value != frozenset() and value != ()


def _custom_key(value: object) -> tuple[bool, object]:
    # Keeps True distinct from 1 when custom values are compared or hashed.
    return (isinstance(value, bool), value)


def _as_number(value: Fact) -> float | None:
    if is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if is_number(number) else None
    return None


def compile_condition(
    cond: Condition, timezone: str, path: str = "when", groups: RegexGroups | None = None
) -> tuple[Node, Guards]:
    """``groups``: where a rule set collects its regex tests (see regexes.py); optional."""
    if cond.all_ is not None or cond.any_ is not None:
        is_all = cond.all_ is not None
        kids = cond.all_ if cond.all_ is not None else cond.any_
        assert kids is not None
        name = "all" if is_all else "any"
        compiled = [compile_condition(c, timezone, f"{path}.{name}[{i}]", groups) for i, c in enumerate(kids)]
        nodes = tuple(n for n, _ in compiled)
        tests = tuple(n.test for n in nodes)
        guards = [g for _, g in compiled]
        test = _all(tests) if is_all else _any(tests)
        if is_all:  # every child is necessary: keep all their guards, best first
            combined = sorted((g for child in guards for g in child), key=guard_rank)
        else:  # one of the children is necessary: the union of their best guards
            combined = [] if any(not g for g in guards) else [tuple(a for child in guards for a in child[0])]
        return Node(name, test, nodes, render(cond), path), combined
    if cond.not_ is not None:
        inner, _ = compile_condition(cond.not_, timezone, f"{path}.not", groups)
        inner_test = inner.test

        def negated(f: TicketFacts) -> bool:
            return not inner_test(f)

        return Node("not", negated, (inner,), render(cond), path), []
    return _leaf(cond, timezone, path, groups)


def _all(tests: tuple[Test, ...]) -> Test:
    # Unrolled for the common small groups: a generator inside all() costs more than the leaves.
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda f: a(f) and b(f)
    if len(tests) == 3:
        a, b, c = tests
        return lambda f: a(f) and b(f) and c(f)

    def test(f: TicketFacts) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop beats all() over a generator here
            if not t(f):
                return False
        return True

    return test


def _any(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda f: a(f) or b(f)
    if len(tests) == 3:
        a, b, c = tests
        return lambda f: a(f) or b(f) or c(f)

    def test(f: TicketFacts) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop beats any() over a generator here
            if t(f):
                return True
        return False

    return test


def _leaf(cond: Condition, timezone: str, path: str, groups: RegexGroups | None) -> tuple[Node, Guards]:
    name, op, value, cs = cond.field, cond.op, cond.value, cond.case_sensitive
    assert name is not None and op is not None
    kind = field_kind(name)
    assert kind is not None
    # Regexes run on the raw text with RE2's own case folding: case-folding a pattern would
    # change its meaning (\S is not \s).
    textual = kind in (Kind.STR, Kind.TAGS, Kind.CUSTOM) and op != "matches"
    fold = textual and not cs

    def prepared(item: Any) -> Any:
        # In NFC, as the facts are: the same text typed composed or decomposed is one constant.
        if textual and isinstance(item, str):
            item = nfc(item)
        return _fold(item) if fold else item

    const: Any = [prepared(v) for v in value] if isinstance(value, list) else prepared(value)
    key = fact_key(name, fold)

    if kind in (Kind.TIME_OF_DAY, Kind.WEEKDAY):
        getter = _local_getter(kind, timezone)
        make = _time_operator if kind is Kind.TIME_OF_DAY else _weekday_operator
        test = make(op, const, getter)
        shown = getter if kind is Kind.WEEKDAY else _tod_display(timezone)
    else:
        if kind is Kind.CUSTOM:
            test = _custom_operator(op, const, cs, key)
        else:
            test = _operator(kind, op, const, cs, key, groups)

        def shown(f: TicketFacts) -> Fact:
            return f.lookup[name]

    node = Node("leaf", test, (), render(cond), path, name, op, shown)
    guard = _guard(kind, name, op, const, fold)
    return node, [] if guard is None else [guard]


# Fields whose values are spread thin, so an equality on them rarely holds: the best guards.
_SELECTIVE = {
    "requester.domain": 0,
    "requester.email": 0,
    "organization": 0,
    "requester.name": 0,
    "tags": 1,
    "subject": 1,
    "description": 1,
    "text": 1,
    "category": 2,
    "language": 3,
}


def _guard(kind: Kind, name: str, op: str, const: Any, fold: bool) -> Guard | None:
    """The atoms of a leaf usable by the engine's index, if any (see engine.py)."""
    consts = const if op == "in" else [const]
    if kind is Kind.CUSTOM:
        # Only string constants: they cannot collide with bool/number facts, and lists of
        # strings are looked up element by element, exactly like the operator does.
        if op in ("equals", "in") and all(isinstance(c, str) for c in consts):
            return tuple(Atom("eq", name, fold, c) for c in consts)
        return None
    if kind not in (Kind.STR, Kind.TAGS, Kind.PRIORITY, Kind.STATUS, Kind.LEVEL):
        return None
    if op in ("equals", "in") or (op == "contains" and kind is Kind.TAGS):
        return tuple(Atom("eq", name, fold, c) for c in consts)
    if name == "text" and op == "contains" and "\n" not in const:
        # text is subject + "\n" + description: a literal without a newline cannot span the
        # two, so scanning subject and description (scanned anyway) saves a third scan.
        literal = re2.escape(const)
        return (Atom("lit", "subject", fold, literal), Atom("lit", "description", fold, literal))
    if kind is Kind.STR and op in ("contains", "starts_with", "ends_with"):
        literal = re2.escape(const)
        pattern = {"contains": literal, "starts_with": r"\A" + literal, "ends_with": literal + r"\z"}[op]
        return (Atom("lit", name, fold, pattern),)
    return None


def guard_rank(guard: Guard) -> tuple[int, bool, int]:
    """Lower is better: selective fields, then equality over text scans, then fewer atoms."""
    field_rank = max(_SELECTIVE.get(a.field, 0 if a.field.startswith("custom.") else 4) for a in guard)
    return field_rank, any(a.kind == "lit" for a in guard), len(guard)


def _local_getter(kind: Kind, timezone: str) -> Getter:
    index = 0 if kind is Kind.TIME_OF_DAY else 1

    def getter(f: TicketFacts) -> Fact:
        return f.local_time(timezone)[index]

    return getter


def _tod_display(timezone: str) -> Getter:
    def getter(f: TicketFacts) -> Fact:
        minutes = f.local_time(timezone)[0]
        return f"{minutes // 60:02d}:{minutes % 60:02d} {timezone}"

    return getter


def _operator(kind: Kind, op: str, c: Any, cs: bool, k: str, groups: RegexGroups | None) -> Test:
    """The closure for one leaf. Each reads ``f.lookup`` once and never raises on odd facts.

    Written out per operator (not composed from a getter) because this is the hot loop: one
    Python call per leaf instead of two doubles the router's throughput.
    """
    if kind is Kind.DATETIME and op in ("before", "after"):
        c = parse_datetime(c)
    if op == "exists":
        want = c is not False
        return lambda f: present(f.lookup[k]) is want
    if kind is Kind.TAGS:
        if op == "contains":
            return lambda f: c in f.lookup[k]  # type: ignore[operator]
        if op in ("in", "not_in"):
            wanted, hit = frozenset(c), op == "in"
            return lambda f: wanted.isdisjoint(f.lookup[k]) is not hit  # type: ignore[arg-type]
        rx = compile_regex(c, cs)
        return lambda f: any(rx.search(t) is not None for t in f.lookup[k])  # type: ignore[union-attr]
    if op == "equals":
        return lambda f: f.lookup[k] == c
    if op == "not_equals":
        return lambda f: f.lookup[k] != c
    if op in ("in", "not_in"):
        members = frozenset(c)
        if op == "in":
            return lambda f: f.lookup[k] in members
        return lambda f: f.lookup[k] not in members
    if op == "contains":
        return lambda f: (v := f.lookup[k]) is not None and c in v  # type: ignore[operator]
    if op == "starts_with":
        return lambda f: (v := f.lookup[k]) is not None and v.startswith(c)  # type: ignore[union-attr]
    if op == "ends_with":
        return lambda f: (v := f.lookup[k]) is not None and v.endswith(c)  # type: ignore[union-attr]
    if op == "matches":
        return regex_test(c, cs, k, groups)
    # Order operators: facts here are numbers or aware datetimes; None never compares.
    if op == "gt":
        return lambda f: (v := f.lookup[k]) is not None and v > c
    if op in ("gte", "after"):
        return lambda f: (v := f.lookup[k]) is not None and v >= c
    if op in ("lt", "before"):
        return lambda f: (v := f.lookup[k]) is not None and v < c
    if op == "lte":
        return lambda f: (v := f.lookup[k]) is not None and v <= c
    if op == "between":
        low, high = c
        return lambda f: (v := f.lookup[k]) is not None and low <= v <= high
    raise ValueError(f"operator {op!r} is not supported on {kind.value} fields")


def _time_operator(op: str, c: Any, get: Getter) -> Test:
    if op == "between":
        start, end = (parse_time_of_day(t) for t in c)
        if start < end:
            return lambda f: start <= get(f) < end  # type: ignore[operator]
        return lambda f: get(f) >= start or get(f) < end  # type: ignore[operator]
    minute = parse_time_of_day(c)
    if op == "before":
        return lambda f: get(f) < minute  # type: ignore[operator]
    return lambda f: get(f) >= minute  # type: ignore[operator]


def _weekday_operator(op: str, c: Any, get: Getter) -> Test:
    days = frozenset(c if isinstance(c, list) else [c])
    if op in ("equals", "in"):
        return lambda f: get(f) in days
    return lambda f: get(f) not in days


def _custom_operator(op: str, c: Any, cs: bool, k: str) -> Test:
    """Custom fields have no declared type: each operator checks the fact's type itself."""
    if op == "exists":
        want = c is not False
        return lambda f: present(f.lookup[k]) is want
    if op in ("equals", "not_equals", "in", "not_in", "contains"):
        consts = c if isinstance(c, list) else [c]
        keys = frozenset(_custom_key(v) for v in consts)
        # A number constant also equals a string that reads as that number, as gt / lt see it.
        numeric = any(is_number(v) for v in consts)

        def member(x: object) -> bool:
            if _custom_key(x) in keys:
                return True
            return numeric and isinstance(x, str) and (n := _as_number(x)) is not None and (False, n) in keys

        def hit(f: TicketFacts) -> bool:
            v = f.lookup[k]
            if isinstance(v, tuple):  # multi-select fields: any element
                return any(member(x) for x in v)
            if op == "contains":
                return isinstance(v, str) and isinstance(c, str) and c in v
            return v is not None and member(v)

        if op in ("not_equals", "not_in"):
            return lambda f: not hit(f)
        return hit
    if op in ("starts_with", "ends_with", "matches"):
        rx = compile_regex(c, cs) if op == "matches" else None

        def string_test(f: TicketFacts) -> bool:
            v = f.lookup[k]
            if not isinstance(v, str):
                return False
            if rx is not None:
                return rx.search(v) is not None
            return v.startswith(c) if op == "starts_with" else v.endswith(c)

        return string_test
    low, high = c if op == "between" else (c, c)
    compare: dict[str, Callable[[float], bool]] = {
        "gt": lambda v: v > c,
        "gte": lambda v: v >= c,
        "lt": lambda v: v < c,
        "lte": lambda v: v <= c,
        "between": lambda v: low <= v <= high,
    }
    check = compare[op]

    def number_test(f: TicketFacts) -> bool:
        v = _as_number(f.lookup[k])
        return v is not None and check(v)

    return number_test
