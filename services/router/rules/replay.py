"""Replay tickets through two rule set versions to preview the effect of a change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .engine import CompiledRuleSet
from .facts import TicketFacts


@dataclass(frozen=True, slots=True)
class ReplayChange:
    ticket_key: str | None
    before: str
    after: str
    rule_before: str | None
    rule_after: str | None


@dataclass(slots=True)
class ReplayReport:
    total: int = 0
    changed: int = 0
    before: Counter[str] = field(default_factory=Counter)  # target label -> tickets
    after: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (before, after), changed only
    examples: list[ReplayChange] = field(default_factory=list)  # the first few changed tickets

    def render(self) -> str:
        lines = [f"{self.changed} of {self.total} tickets would change team"]
        for target in sorted(set(self.before) | set(self.after)):
            old, new = self.before[target], self.after[target]
            lines.append(f"  {target}: {old} -> {new} ({new - old:+d})")
        for (old_target, new_target), count in self.transitions.most_common(10):
            lines.append(f"  {old_target} => {new_target}: {count}")
        return "\n".join(lines)


def replay(
    old: CompiledRuleSet, new: CompiledRuleSet, tickets: Iterable[TicketFacts], *, max_examples: int = 20
) -> ReplayReport:
    """Targets are team names, ``pool:a|b`` or ``triage`` (see RoutingOutcome.target)."""
    report = ReplayReport()
    for facts in tickets:
        before, after = old.evaluate(facts), new.evaluate(facts)
        report.total += 1
        report.before[before.target] += 1
        report.after[after.target] += 1
        if before.target != after.target:
            report.changed += 1
            report.transitions[(before.target, after.target)] += 1
            if len(report.examples) < max_examples:
                report.examples.append(
                    ReplayChange(facts.ticket_key, before.target, after.target, before.rule_id, after.rule_id)
                )
    return report
