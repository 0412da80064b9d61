"""The live routing policy: the compiled rule set of the newest version, hot-reloaded.

Each router polls the newest rule-set version number (one indexed query) and compiles a new
version once, when it appears, so a change reaches every router within the poll period
without a restart, and no ticket pays for parsing rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.routing.lifecycle import RouteResult
from services.router.rules import CompiledRuleSet, RuleSet, compile_ruleset, facts_from_ticket
from services.router.rulesets.store import latest, latest_version_number, ruleset_of
from shared.events import TicketSnapshot, utc_now

log = logging.getLogger(__name__)

RULESET_VERSION = Gauge("router_ruleset_version", "Rule-set version this router is using")


class RoutingPolicy:
    """Routes one ticket with one compiled rule set (plus, later, classifier and team load)."""

    def __init__(
        self, compiled: CompiledRuleSet, version: int, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.compiled = compiled
        self.version = version
        self.clock = clock

    def route(self, snapshot: TicketSnapshot, source: str) -> RouteResult:
        facts = facts_from_ticket(snapshot, source, self.clock())
        outcome = self.compiled.evaluate(facts)
        team = outcome.team
        if outcome.pool is not None:
            team = outcome.pool.teams[0]
        if outcome.triage:
            team = None
        return RouteResult(
            team=team,
            priority=outcome.priority,
            rule=outcome.rule_name,
            ruleset_version=self.version or None,
            reasons=list(outcome.reasons),
            sla_policy=outcome.sla_policy,
            tags=list(outcome.tags),
        )


class LiveRules:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], default_team: str | None = None) -> None:
        self.sessions = sessions
        self.default_team = default_team
        self.version = -1
        self.policy = self._build(RuleSet(default_team=default_team), 0)

    def _build(self, ruleset: RuleSet, version: int) -> RoutingPolicy:
        if ruleset.default_team is None and self.default_team is not None:
            ruleset = ruleset.model_copy(update={"default_team": self.default_team})
        ruleset.version = version
        return RoutingPolicy(compile_ruleset(ruleset), version)

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
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep routing with the rules we have
                log.warning("rule set refresh failed", extra={"error": repr(exc)})
            await asyncio.sleep(poll_s)
