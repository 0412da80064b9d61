"""The live routing policy: the compiled rule set of the newest version, hot-reloaded.

Each router polls the newest rule-set version number (one indexed query) and compiles a new
version once, when it appears, so a change reaches every router within the poll period
without a restart, and no ticket pays for parsing rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.classifiers.enrichment import (
    NO_CLASSIFIERS,
    ClassifierView,
    TextSignals,
    classifier_team,
    compute_signals,
    filter_pool_by_language,
    text_signals_many,
)
from services.router.load.book import LoadBook
from services.router.routing.lifecycle import RouteResult
from services.router.rules import CompiledRuleSet, PoolTarget, RuleSet, compile_ruleset, facts_from_ticket
from services.router.rulesets.store import latest, latest_version_number, ruleset_of
from services.router.sla.priority import DEFAULT_MATRIX, Level, PriorityMatrix
from shared.events import TicketSnapshot, utc_now
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

RULESET_VERSION = Gauge("router_ruleset_version", "Rule-set version this router is using")


class RoutingPolicy:
    """Routes one ticket with one compiled rule set (plus, later, classifier and team load)."""

    def __init__(
        self,
        compiled: CompiledRuleSet,
        version: int,
        clock: Callable[[], datetime] = utc_now,
        matrix: PriorityMatrix = DEFAULT_MATRIX,
    ) -> None:
        self.compiled = compiled
        self.version = version
        self.clock = clock
        self.matrix = matrix

    def route(
        self,
        snapshot: TicketSnapshot,
        source: str,
        classifiers: ClassifierView = NO_CLASSIFIERS,
        loads: LoadBook | None = None,
        known: TextSignals | None = None,
        now: datetime | None = None,
    ) -> RouteResult:
        """``loads``: the batch's team loads; without them a pool assigns its first team.
        ``known``: the ticket's text signals when computed for the batch already. ``now``: the
        instant the rules see (time of day, ticket age); the policy's clock when not given."""
        signals = compute_signals(snapshot.subject, snapshot.description, snapshot.tags, classifiers, known)
        facts = facts_from_ticket(snapshot, source, self.clock() if now is None else now, **signals.facts())
        outcome = self.compiled.evaluate(facts)
        reasons = [*outcome.reasons, signals.summary()]
        team = outcome.team
        if outcome.pool is not None:
            pool = filter_pool_by_language(outcome.pool.teams, signals.language, classifiers.team_languages)
            team = pool[0]
            if loads is not None and pool:
                target = outcome.pool
                if tuple(pool) != target.teams:
                    target = PoolTarget(tuple(pool), target.strategy, target.weights)
                choice = loads.choose(target, f"{source}:{snapshot.external_id}")
                team = choice.team
                reasons.append(choice.reason)
        if outcome.triage:
            team = None
        if outcome.rule_id is None and signals.team is not None and signals.team_model is not None:
            # No rule chose a team (default team or triage): the team model may.
            team, why = classifier_team(
                signals.team, signals.team_model.model.threshold, team, classifiers.below_threshold
            )
            reasons.append(why)
        priority = outcome.priority
        # Text urgency counts only when the detector found evidence (no signal is no opinion).
        detected = signals.urgency.rank if signals.urgency.signals else None
        urgency, impact = outcome.urgency or detected, outcome.impact
        if priority is None and snapshot.priority is None and (urgency or impact):
            # Neither a rule nor the source set a priority: derive it from urgency x impact.
            u, i = Level(urgency or Level.MEDIUM), Level(impact or Level.MEDIUM)
            priority = self.matrix.priority_for(u, i)
            why = f"urgency {u.name.lower()} x impact {i.name.lower()}"
            reasons.append(f"priority {priority.value} from {why}")
        return RouteResult(
            team=team,
            priority=priority,
            urgency=urgency,
            impact=impact,
            rule=outcome.rule_name,
            ruleset_version=self.version or None,
            reasons=reasons,
            category=None if signals.category is None else signals.category.label,
            category_confidence=None if signals.category is None else signals.category.confidence,
            language=signals.language,
            sla_policy=outcome.sla_policy,
            tags=list(outcome.tags),
        )

    def bind(self, classifiers: ClassifierView = NO_CLASSIFIERS) -> BoundRoute:
        return BoundRoute(self, classifiers)


class BoundRoute:
    """One batch's route function: one policy and one classifier view, whatever reloads meanwhile.

    ``prepare`` computes the text signals of the batch's tickets together (a batched language
    walk and one matrix product per model cost a fraction of one pass per ticket). The rules see
    one instant for the whole batch, read from the policy's clock when its first ticket is routed.
    """

    def __init__(self, policy: RoutingPolicy, classifiers: ClassifierView) -> None:
        self.policy = policy
        self.classifiers = classifiers
        self.known: dict[tuple[str, str], TextSignals] = {}
        self.now: datetime | None = None

    def prepare(self, texts: Sequence[tuple[str, str]]) -> None:
        pending = [text for text in dict.fromkeys(texts) if text not in self.known]
        if pending:
            self.known.update(zip(pending, text_signals_many(pending, self.classifiers), strict=True))

    def __call__(self, snapshot: TicketSnapshot, source: str, loads: LoadBook | None = None) -> RouteResult:
        known = self.known.get((snapshot.subject, snapshot.description))
        if self.now is None:
            self.now = self.policy.clock()
        return self.policy.route(snapshot, source, self.classifiers, loads, known, self.now)


class LiveRules:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        default_team: str | None = None,
        matrix: PriorityMatrix = DEFAULT_MATRIX,
    ) -> None:
        self.sessions = sessions
        self.default_team = default_team
        self.matrix = matrix
        self.version = -1
        self.policy = self._build(RuleSet(default_team=default_team), 0)

    def _build(self, ruleset: RuleSet, version: int) -> RoutingPolicy:
        if ruleset.default_team is None and self.default_team is not None:
            ruleset = ruleset.model_copy(update={"default_team": self.default_team})
        ruleset.version = version
        return RoutingPolicy(compile_ruleset(ruleset), version, matrix=self.matrix)

    async def refresh(self) -> bool:
        """Load and compile the newest version if it changed; True when it did."""
        async with self.sessions() as session:
            number = await latest_version_number(session)
            if number == self.version:
                return False
            row = await latest(session)
        if row is None:
            self.policy = self._build(RuleSet(default_team=self.default_team), 0)
            self.version = 0
        else:
            self.policy = self._build(ruleset_of(row), row.version)
            self.version = row.version
        RULESET_VERSION.set(self.version)
        log.info("rule set loaded", extra={"version": self.version})
        return True

    async def watch(self, poll_s: float) -> None:
        # A failed refresh keeps routing with the rules we have.
        await repeat_forever(self.refresh, poll_s, log, "rule set refresh failed")
