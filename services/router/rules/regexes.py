"""``matches`` on string fields: the costliest leaf, so two shortcuts, neither changing a result.

Every search runs on the field's UTF-8 bytes (``TicketFacts.utf8``, encoded once per ticket):
on bytes, re2's ``search`` neither re-encodes the text nor maps offsets back to characters.

* a per-ticket memo: rules repeat patterns, and a pattern is searched once per ticket and field;
* :class:`RegexGroups`: most tickets match none of a rule set's patterns, so one search for the
  alternation of a group of them (same field, same case mode) answers "no" for the whole group
  at the price of one call. Only when it finds something does each pattern run on its own.

Results live in the ticket's lookup under ``MEMO`` keys, which name the field, the case mode and
the pattern(s) searched, so rule sets sharing a ticket (a replay) share only identical searches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

from .facts import MEMO, FactLookup, TicketFacts
from .fields import compile_regex, regex_options

# A group's alternation stays small: RE2 then keeps it a cheap DFA (a huge one could fall back
# to the slower NFA), and a pattern matching often spoils the "no" of only its own chunk.
_GROUP_PATTERNS = 16
_GROUP_CHARS = 4_000


class RegexGroup:
    """Up to ``_GROUP_PATTERNS`` patterns on one field and case mode; ``rx`` set by ``finish``."""

    __slots__ = ("memo", "patterns", "rx")

    def __init__(self) -> None:
        self.patterns: list[str] = []
        self.rx: Any = None  # the compiled alternation; None: search each pattern alone
        self.memo = ""


class RegexGroups:
    """The ``matches`` tests of one rule set, grouped; call :meth:`finish` once all are added."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, bool], list[RegexGroup]] = {}

    def add(self, key: str, case_sensitive: bool, pattern: str) -> RegexGroup:
        if "\\Q" in pattern:
            # \Q quotes up to the next \E, or to the end: in an alternation an unterminated one
            # turns the patterns after it into literal text, and a later "\Q...\E)" can still make
            # the whole compile. Such a pattern is searched on its own.
            return RegexGroup()
        chunks = self._groups.setdefault((key, case_sensitive), [])
        for group in chunks:
            if pattern in group.patterns:
                return group
        last = chunks[-1] if chunks else None
        size = 0 if last is None else sum(len(p) for p in last.patterns)
        if last is None or len(last.patterns) >= _GROUP_PATTERNS or size + len(pattern) > _GROUP_CHARS:
            last = RegexGroup()
            chunks.append(last)
        last.patterns.append(pattern)
        return last

    def finish(self) -> None:
        for (key, cs), chunks in self._groups.items():
            for group in chunks:
                if len(group.patterns) < 2:
                    continue  # one pattern: its own search is the group's search
                # (?:...) keeps each pattern's meaning: RE2 scopes inline flags to the group,
                # ^ and $ still mean the text's ends, and nothing is captured.
                combined = "|".join(f"(?:{p})" for p in group.patterns)
                try:  # not compile_regex: its length limit is for the patterns users write
                    rx = re2.compile(combined, regex_options(cs))
                except re2.error:  # too large: one by one
                    continue
                group.memo = f"{MEMO}{MEMO}{key}{MEMO}{cs:d}{combined}"
                group.rx = rx


def regex_test(pattern: str, cs: bool, k: str, groups: RegexGroups | None) -> Callable[[TicketFacts], bool]:
    """The test ``k matches pattern`` (the fact ``k`` is raw text: RE2 folds case itself)."""
    rx = compile_regex(pattern, cs)
    memo = f"{MEMO}{k}{MEMO}{cs:d}{pattern}"
    group = RegexGroup() if groups is None else groups.add(k, cs, pattern)  # alone: rx stays None

    def test(f: TicketFacts) -> bool:
        values = f.lookup
        found = values.get(memo)
        if found is None:
            v = f.utf8(k)  # bytes, like the patterns' UTF-8 encoding (regex_options' default)
            if v is None or (group.rx is not None and _none_match(values, group, v)):
                found = False
            else:
                found = rx.search(v) is not None
            values[memo] = found
        return found is True

    return test


def _none_match(values: FactLookup, group: RegexGroup, v: bytes) -> bool:
    none = values.get(group.memo)
    if none is None:
        none = values[group.memo] = group.rx.search(v) is None
    return none is True
