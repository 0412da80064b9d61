"""The rule-set diff at scale: same output as the textbook LCS it replaced, in O(n log n).

``textbook_diff`` below is the diff with the table it had (an O(n^2) longest-common-subsequence
table, walked from the front) in place of the new one, kept as the reference: "moved" must name
exactly the rules it named.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.rules import RuleSet, RuleSetDiff, diff_rulesets, parse_ruleset
from services.router.rules import diff as diff_module


def textbook_kept(a: list[str], b: list[str]) -> set[str]:
    """The reference: the rules that did not move, as the diff always chose them."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    kept, i, j = set(), 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            kept.add(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return kept


def textbook_diff(old: RuleSet, new: RuleSet) -> RuleSetDiff:
    """The whole diff with the textbook table choosing the rules that stayed."""
    with mock.patch.object(diff_module, "_lcs", textbook_kept):
        return diff_rulesets(old, new)


def rules(ids: list[str], team: Callable[[str], str] = lambda _: "desk", **settings: Any) -> RuleSet:
    return parse_ruleset(
        {"rules": [{"id": i, "name": i, "actions": {"assign_team": team(i)}} for i in ids], **settings}
    )


def moved(old: list[str], new: list[str]) -> tuple[str, ...]:
    return diff_rulesets(rules(old), rules(new)).moved


# Orders and what moved, by the documented rule: a longest run of rules keeping their relative
# order stays; of several, the one a front-to-back walk finds, which on a tie keeps the later rule
# of the old order.
CASES = [
    ("abc", "abc", ""),
    ("", "", ""),
    ("ab", "ba", "a"),
    ("abc", "cab", "c"),
    ("abc", "bca", "a"),
    ("abc", "cba", "ba"),
    ("abcd", "badc", "ac"),
    ("abcd", "dcba", "cba"),
    ("abcde", "eabcd", "e"),
    ("abcde", "bcdea", "a"),
    ("abcdef", "defabc", "abc"),
    ("abcdef", "cdabef", "ab"),
    ("abcd", "cdab", "ab"),
    ("abcde", "acbed", "bd"),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_moved_rules_of_small_reorderings(old: str, new: str, expected: str) -> None:
    assert moved(list(old), list(new)) == tuple(expected)
    assert textbook_kept(list(old), list(new)) == set(old) - set(expected)  # the table is the reference


@st.composite
def version_pairs(draw: st.DrawFn) -> tuple[RuleSet, RuleSet]:
    """An old and a new version: rules kept (reordered by a few moves or shuffled), removed,
    added and changed."""
    size = draw(st.integers(0, 40))
    old_ids = [f"r{i}" for i in range(size)]
    kept = [rule_id for rule_id in old_ids if draw(st.integers(0, 9)) > 0]
    if draw(st.booleans()):
        new_ids = list(draw(st.permutations(kept)))
    else:  # near the old order: where ties between equally long runs are the common case
        new_ids = list(kept)
        for _ in range(draw(st.integers(0, 6))):
            if new_ids:
                rule_id = new_ids.pop(draw(st.integers(0, len(new_ids) - 1)))
                new_ids.insert(draw(st.integers(0, len(new_ids))), rule_id)
    for added in range(draw(st.integers(0, 3))):
        new_ids.insert(draw(st.integers(0, len(new_ids))), f"n{added}")
    changed = set(draw(st.lists(st.sampled_from(new_ids), max_size=5))) if new_ids else set()
    old = rules(old_ids, default_team="general")
    new = rules(
        new_ids,
        lambda i: "other" if i in changed else "desk",
        default_team=draw(st.sampled_from(["general", "other"])),
    )
    return old, new


@settings(max_examples=400, deadline=None)
@given(version_pairs())
def test_same_diff_as_the_textbook_lcs(pair: tuple[RuleSet, RuleSet]) -> None:
    old, new = pair
    assert diff_rulesets(old, new) == textbook_diff(old, new)
    assert diff_rulesets(new, old) == textbook_diff(new, old)


def test_same_diff_as_the_textbook_lcs_on_a_few_hundred_rules() -> None:
    generator = random.Random(20_240_506)
    for _ in range(20):
        ids = [f"r{i}" for i in range(generator.randint(100, 300))]
        new = list(ids)
        for _ in range(generator.randint(0, 60)):
            new.insert(generator.randrange(len(new)), new.pop(generator.randrange(len(new))))
        old_set, new_set = rules(ids), rules(new)
        assert diff_rulesets(old_set, new_set) == textbook_diff(old_set, new_set)


N = 5_000  # the most rules a set may have


def test_five_thousand_rules() -> None:
    """Known answers at the largest size (the textbook table took ~4 s per diff here)."""
    ids = [f"r{i}" for i in range(N)]
    assert moved(ids, ids) == ()
    assert moved(ids, [*ids[1:], ids[0]]) == ("r0",)  # the first rule to the end
    assert moved(ids, [ids[-1], *ids[:-1]]) == (ids[-1],)  # the last rule to the front
    # Reversed: one rule can stay, and it is the old order's last one.
    assert moved(ids, ids[::-1]) == tuple(ids[-2::-1])
    # Neighbours swapped: one of each pair moves (the earlier one of the old order).
    swapped = [ids[i ^ 1] for i in range(N)]
    assert moved(ids, swapped) == tuple(ids[i] for i in range(0, N, 2))
    # A block of 1,000 moved to the end: the block is what moved.
    block = ids[1_000:2_000]
    assert moved(ids, [*ids[:1_000], *ids[2_000:], *block]) == tuple(block)
    # Everything else at once: additions, removals, changes and settings.
    old = rules(ids, default_team="general")
    new_ids = [f"x{i}" if i % 7 == 0 else ids[i] for i in range(N)]
    new_ids.append(new_ids.pop(3))
    new = rules(new_ids, lambda i: "other" if i.endswith("5") else "desk", timezone="Europe/Berlin")
    diff = diff_rulesets(old, new)
    assert diff.added == tuple(i for i in new_ids if i.startswith("x"))
    assert diff.removed == tuple(ids[i] for i in range(0, N, 7))
    assert diff.moved == ("r3",)
    assert {c.rule_id for c in diff.changed} == {i for i in new_ids if i.startswith("r") and i.endswith("5")}
    assert diff.settings == {"default_team": ("general", None), "timezone": ("UTC", "Europe/Berlin")}


def test_five_thousand_shuffled_rules_keep_a_longest_common_order() -> None:
    ids = [f"r{i}" for i in range(N)]
    shuffled = list(ids)
    random.Random(7).shuffle(shuffled)
    went = set(moved(ids, shuffled))
    stays = [i for i in shuffled if i not in went]
    where = {rule_id: index for index, rule_id in enumerate(ids)}
    assert [where[i] for i in stays] == sorted(where[i] for i in stays)  # in the old order too
    assert len(stays) == longest_increasing([where[i] for i in shuffled])  # and as many as can


def longest_increasing(values: list[int]) -> int:
    """Length of a longest increasing subsequence, by the quadratic-free textbook method."""
    from bisect import bisect_left

    tails: list[int] = []
    for value in values:
        slot = bisect_left(tails, value)
        tails[slot : slot + 1] = [value]
    return len(tails)


class OverBudget(Exception):
    pass


def python_lines(work: Callable[[], object], budget: int) -> int:
    """How many Python lines ``work`` executes (a count of steps, not a time); stops at ``budget``."""
    count = 0

    def on_line(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > budget:
                raise OverBudget(f"more than {budget} Python lines")
        return on_line

    previous = sys.gettrace()
    sys.settrace(on_line)
    try:
        work()
    finally:
        sys.settrace(previous)
    return count


def test_work_grows_about_linearly_with_the_rule_count() -> None:
    """Twenty times the rules may cost at most forty times the steps: the table cost 400 times."""
    small, large = 250, N
    pairs = {}
    for size in (small, large):
        ids = [f"r{i}" for i in range(size)]
        shuffled = list(ids)
        random.Random(size).shuffle(shuffled)
        pairs[size] = (rules(ids), rules(shuffled))
    steps_small = python_lines(lambda: diff_rulesets(*pairs[small]), budget=10**9)
    budget = 2 * (large // small) * steps_small
    try:
        steps_large = python_lines(lambda: diff_rulesets(*pairs[large]), budget=budget)
    except OverBudget:
        pytest.fail(f"{large} rules took more than {budget} Python lines ({small} rules: {steps_small})")
    assert steps_large <= budget
