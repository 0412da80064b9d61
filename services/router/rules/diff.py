"""What changed between two rule set versions: for history, `rules apply` previews and audit."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from .schema import Rule, RuleSet


@dataclass(frozen=True, slots=True)
class RuleChange:
    rule_id: str
    keys: tuple[str, ...]  # e.g. ("when", "actions.assign_team")


@dataclass(frozen=True, slots=True)
class RuleSetDiff:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[RuleChange, ...] = ()
    moved: tuple[str, ...] = ()  # rules whose order relative to the other kept rules changed
    settings: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # default_team, timezone

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved or self.settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the audit log."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {c.rule_id: list(c.keys) for c in self.changed},
            "moved": list(self.moved),
            "settings": {k: {"old": old, "new": new} for k, (old, new) in self.settings.items()},
        }

    def render(self) -> str:
        if self.empty:
            return "no changes"
        lines = [f"{name}: {old!r} -> {new!r}" for name, (old, new) in self.settings.items()]
        lines += [f"+ rule {rule_id}" for rule_id in self.added]
        lines += [f"- rule {rule_id}" for rule_id in self.removed]
        lines += [f"~ rule {c.rule_id}: {', '.join(c.keys)}" for c in self.changed]
        lines += [f"↕ rule {rule_id} moved" for rule_id in self.moved]
        return "\n".join(lines)


def _rule_keys(rule: Rule) -> dict[str, Any]:
    # Actions are compared key by key (a preview should say *which* action changed); the
    # condition tree as a whole, since a path-level tree diff is noise to a reviewer.
    data = rule.model_dump(mode="json", by_alias=True)
    actions = data.pop("actions")
    data.update({f"actions.{k}": v for k, v in actions.items()})
    return data


def _changed_keys(old: Rule, new: Rule) -> tuple[str, ...]:
    a, b = _rule_keys(old), _rule_keys(new)
    return tuple(k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k))


def _lcs(a: list[str], b: list[str]) -> set[str]:
    """Ids in a longest common subsequence: the rules that did *not* move.

    ``a`` and ``b`` hold the same unique ids (the rules both versions have), so a common
    subsequence of them is an increasing subsequence of ``positions`` (each id of ``a`` replaced by
    its index in ``b``), found in O(n log n) instead of the O(n^2) table of the textbook LCS.

    Of several longest ones, this picks the one the textbook table's walk from the front picks
    (on a tie it drops ``a``'s element rather than ``b``'s), so that a diff reads as it always
    did: walking ``a`` front to back, an element is kept exactly when every longest common
    subsequence of what is left of ``a`` and ``b`` starts with it.
    """
    where = {rule_id: index for index, rule_id in enumerate(b)}
    positions = [where[rule_id] for rule_id in a]
    # longest[i]: length of the longest increasing run of positions that starts at index i, by
    # patience sorting from the right (read backwards, such a run decreases, so it is negated).
    longest = [0] * len(positions)
    tails: list[int] = []  # tails[k]: minus the largest position that starts a run of length k + 1
    for i in range(len(positions) - 1, -1, -1):
        slot = bisect_left(tails, -positions[i])
        if slot == len(tails):
            tails.append(-positions[i])
        else:
            tails[slot] = -positions[i]
        longest[i] = slot + 1
    # Indices of equal ``longest`` have decreasing positions (a later, larger one would extend
    # the earlier run), so "a later start of the same length is still usable" is one look at
    # the next index of that length.
    following: list[int | None] = [None] * len(positions)
    last_of_length: dict[int, int] = {}
    for i in range(len(positions) - 1, -1, -1):
        following[i] = last_of_length.get(longest[i])
        last_of_length[longest[i]] = i
    kept: set[str] = set()
    wanted, floor = len(tails), -1  # length still to find; positions must exceed floor
    for i, position in enumerate(positions):
        if wanted == 0:
            break
        if longest[i] != wanted or position <= floor:
            continue
        later = following[i]
        if later is None or positions[later] <= floor:
            kept.add(a[i])
            wanted, floor = wanted - 1, position
    return kept


def diff_rulesets(old: RuleSet, new: RuleSet) -> RuleSetDiff:
    old_rules = {r.id: r for r in old.rules}
    new_rules = {r.id: r for r in new.rules}
    common_old = [r.id for r in old.rules if r.id in new_rules]
    common_new = [r.id for r in new.rules if r.id in old_rules]
    stayed = _lcs(common_old, common_new)
    changed = []
    for rule_id in common_new:
        keys = _changed_keys(old_rules[rule_id], new_rules[rule_id])
        if keys:
            changed.append(RuleChange(rule_id, keys))
    settings = {
        name: (getattr(old, name), getattr(new, name))
        for name in ("default_team", "timezone")
        if getattr(old, name) != getattr(new, name)
    }
    return RuleSetDiff(
        added=tuple(r.id for r in new.rules if r.id not in old_rules),
        removed=tuple(r.id for r in old.rules if r.id not in new_rules),
        changed=tuple(changed),
        moved=tuple(rule_id for rule_id in common_new if rule_id not in stayed),
        settings=settings,
    )
