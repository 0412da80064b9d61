"""The live routing policy: the compiled rule set of the newest version, hot-reloaded.

Each router polls the newest rule-set version number (one indexed query) and compiles a new
version once, when it appears, so a change reaches every router within the poll period
without a restart, and no ticket pays for parsing rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.classifiers.enrichment import (
    NO_CLASSIFIERS,
    ClassifierView,
    Signals,
    TextSignals,
    classifier_team,
    compute_signals,
    filter_pool_by_language,
    text_signals_many,
)
from services.router.load.book import LoadBook
from services.router.routing.lifecycle import RouteResult
from services.router.rules import (
    CompiledRuleSet,
    PoolTarget,
    RoutingOutcome,
    RuleSet,
    compile_ruleset,
    facts_from_ticket,
)
from services.router.rulesets.store import latest, latest_version_number, ruleset_of
from services.router.sla.priority import DEFAULT_MATRIX, Level, PriorityMatrix
from shared.events import TicketSnapshot, utc_now
from shared.frozen import frozen
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

RULESET_VERSION = Gauge("router_ruleset_version", "Rule-set version this router is using")


@frozen
class Evaluation:
    """What routing a ticket finds before the batch's team loads: its signals, its rules' outcome."""

    signals: Signals
    outcome: RoutingOutcome


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

    def evaluate(
        self,
        snapshot: TicketSnapshot,
        source: str,
        classifiers: ClassifierView = NO_CLASSIFIERS,
        known: TextSignals | None = None,
        now: datetime | None = None,
    ) -> Evaluation:
        """The ticket's signals and what its rules say. ``known``: its text signals when computed
        for the batch already. ``now``: the instant the rules see (time of day, ticket age); the
        policy's clock when not given."""
        signals = compute_signals(snapshot.subject, snapshot.description, snapshot.tags, classifiers, known)
        facts = facts_from_ticket(snapshot, source, self.clock() if now is None else now, **signals.facts())
        return Evaluation(signals, self.compiled.evaluate(facts))

    def route(
        self,
        snapshot: TicketSnapshot,
        source: str,
        classifiers: ClassifierView = NO_CLASSIFIERS,
        loads: LoadBook | None = None,
        known: TextSignals | None = None,
        now: datetime | None = None,
        evaluation: Evaluation | None = None,
    ) -> RouteResult:
        """``loads``: the batch's team loads; without them a pool assigns its first team.
        ``known`` and ``now``: see ``evaluate``; ``evaluation``: its result, when done already."""
        if evaluation is None:
            evaluation = self.evaluate(snapshot, source, classifiers, known, now)
        signals, outcome = evaluation.signals, evaluation.outcome
        reasons = [*outcome.reasons, signals.summary()]
        team = outcome.team
        if outcome.pool is not None:
            pool = filter_pool_by_language(outcome.pool.teams, signals.language, classifiers.team_languages)
            if len(pool) < len(outcome.pool.teams):  # the rest were not considered: say why
                reasons.append(f"pool narrowed to the teams speaking {signals.language}: {', '.join(pool)}")
            team = pool[0]
            if loads is not None and pool:
                target = outcome.pool
                if tuple(pool) != target.teams:
                    target = PoolTarget(tuple(pool), target.strategy, target.weights)
                key = f"{source}:{snapshot.external_id}"
                choice = loads.choose(target, key)
                if target is not outcome.pool and choice.team not in target.teams:
                    # Speakers are preferred, not required: as when no team speaks the language,
                    # the rest of the pool takes the ticket before the overflow team or triage.
                    wider = loads.choose(outcome.pool, key)
                    if wider.team in outcome.pool.teams:
                        speakers = ", ".join(f"{c.team}: {c.note}" for c in choice.considered)
                        why = f"no team speaking {signals.language} has room ({speakers})"
                        choice = replace(wider, reason=f"{why}; {wider.reason}")
                team = choice.team
                reasons.append(choice.reason)
        elif loads is not None and team is not None:
            # The rules this router loaded may be a poll period old: the team a rule or the default
            # names may have gone, or been deactivated, once a newer rule set stopped naming it.
            problem = loads.team_problem(team)
            if problem is not None:
                reasons.append(f"team {team} is {problem}; to triage")
                team = None
        if outcome.triage:
            team = None
        if outcome.rule_id is None and signals.team is not None and signals.team_model is not None:
            # No rule chose a team (default team or triage): the team model may.
            team, why = classifier_team(
                signals.team,
                signals.team_model.model.threshold,
                team,
                classifiers.below_threshold,
                classifiers.active_teams,
            )
            reasons.append(why)
        priority, derived = outcome.priority, False
        # Text urgency counts only when the detector found evidence (no signal is no opinion).
        detected = signals.urgency.rank if signals.urgency.signals else None
        urgency, impact = outcome.urgency or detected, outcome.impact
        if priority is None and snapshot.priority is None and (urgency or impact):
            # Neither a rule nor the source set a priority: derive it from urgency x impact.
            u, i = Level(urgency or Level.MEDIUM), Level(impact or Level.MEDIUM)
            priority, derived = self.matrix.priority_for(u, i), True
            why = f"urgency {u.name.lower()} x impact {i.name.lower()}"
            reasons.append(f"priority {priority.value} from {why}")
        return RouteResult(
            team=team,
            priority=priority,
            priority_derived=derived,
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
    walk and one matrix product per model cost a fraction of one pass per ticket);
    ``evaluate_ahead`` evaluates new tickets' rules before the batch's turn. The rules see one
    instant for the whole batch, read from the policy's clock when its first ticket is evaluated.
    """

    def __init__(self, policy: RoutingPolicy, classifiers: ClassifierView) -> None:
        self.policy = policy
        self.classifiers = classifiers
        self.known: dict[tuple[str, str], TextSignals] = {}
        self.now: datetime | None = None
        # By id(snapshot): the snapshot (its id is unique while held here), source, evaluation.
        self._evaluated: dict[int, tuple[TicketSnapshot, str, Evaluation]] = {}

    def instant(self) -> datetime:
        if self.now is None:
            self.now = self.policy.clock()
        return self.now

    def prepare(self, texts: Sequence[tuple[str, str]]) -> None:
        pending = [text for text in dict.fromkeys(texts) if text not in self.known]
        if pending:
            self.known.update(zip(pending, text_signals_many(pending, self.classifiers), strict=True))

    def __call__(self, snapshot: TicketSnapshot, source: str, loads: LoadBook | None = None) -> RouteResult:
        known = self.known.get((snapshot.subject, snapshot.description))
        found = self._evaluated.pop(id(snapshot), None)
        evaluation = found[2] if found is not None and found[0] is snapshot and found[1] == source else None
        return self.policy.route(snapshot, source, self.classifiers, loads, known, self.instant(), evaluation)

    def evaluate_ahead(self, tickets: Sequence[tuple[TicketSnapshot, str]]) -> None:
        """Evaluate new tickets (snapshot, source) whose text signals are prepared, for when the
        very same snapshots are routed: what their rules say does not depend on the batch's reads
        (only a pool's choice among its teams does, made when routed). The look-ahead does this
        as idle work, after the text work."""
        now = self.instant()
        for snapshot, source in tickets:
            known = self.known.get((snapshot.subject, snapshot.description))
            if known is not None:  # else the single-ticket text path: left for the batch's turn
                evaluation = self.policy.evaluate(snapshot, source, self.classifiers, known, now)
                self._evaluated[id(snapshot)] = (snapshot, source, evaluation)


class LiveRules:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        default_team: str | None = None,
        matrix: PriorityMatrix = DEFAULT_MATRIX,
        before_applying: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """``before_applying``: awaited before a new version routes anything. The router refreshes
        its SLA configuration there: a rule may name a policy saved a moment before it, which the
        SLA watcher (polling apart) has not loaded yet, and the tickets routed meanwhile would
        keep the fallback policy for good."""
        self.sessions = sessions
        self.default_team = default_team
        self.matrix = matrix
        self.before_applying = before_applying
        self.version = -1
        self.policy = self._build(RuleSet(default_team=default_team), 0)
        # The watcher and the dry runs refresh: one at a time, or one that read an older version
        # and awaited ``before_applying`` would apply it over the newer one the other applied.
        self._refreshing = asyncio.Lock()

    def _build(self, ruleset: RuleSet, version: int) -> RoutingPolicy:
        if ruleset.default_team is None and self.default_team is not None:
            ruleset = ruleset.model_copy(update={"default_team": self.default_team})
        ruleset.version = version
        return RoutingPolicy(compile_ruleset(ruleset), version, matrix=self.matrix)

    async def refresh(self) -> bool:
        """Load and compile the newest version if it changed; True when it did."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        async with self.sessions() as session:
            number = await latest_version_number(session)
            if number == self.version:
                return False
            row = await latest(session)
        if self.before_applying is not None:
            await self.before_applying()
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
