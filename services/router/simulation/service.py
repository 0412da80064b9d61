"""Dry runs of the rules: no state changes, no events.

Evaluation is CPU work (a replay is up to 2 x 10,000 evaluations), so it runs in a worker
thread and never stalls the router's consumer loop, which shares the event loop.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.classifiers.enrichment import detected_urgency
from services.router.models import RouterTicket
from services.router.rules import (
    CompiledRuleSet,
    ReplayReport,
    RoutingOutcome,
    RuleSet,
    TicketFacts,
    compile_ruleset,
    facts_from_ticket,
    replay,
)
from services.router.rulesets.service import check_references
from services.router.simulation.schemas import (
    MAX_REPLAY,
    ConditionFailureOut,
    DecisionOut,
    PoolOut,
    ReplayExample,
    ReplayRequest,
    ReplayResponse,
    SimulateRequest,
    SimulateResponse,
    TraceStep,
    Transition,
)
from shared.events import TicketSnapshot, utc_now


def effective(ruleset: RuleSet, default_team: str | None) -> RuleSet:
    """What LiveRules would run: ROUTER_DEFAULT_TEAM fills in a missing default team."""
    if ruleset.default_team is None and default_team is not None:
        return ruleset.model_copy(update={"default_team": default_team})
    return ruleset


def decision_out(outcome: RoutingOutcome) -> DecisionOut:
    pool = outcome.pool
    return DecisionOut(
        target=outcome.target,
        team=outcome.team,
        pool=None
        if pool is None
        else PoolOut(
            teams=list(pool.teams),
            strategy=pool.strategy,
            weights=None if pool.weights is None else dict(pool.weights),
        ),
        triage=outcome.triage,
        priority=None if outcome.priority is None else outcome.priority.value,
        urgency=outcome.urgency,
        impact=outcome.impact,
        tags=list(outcome.tags),
        sla_policy=outcome.sla_policy,
        rule_id=outcome.rule_id,
        rule_name=outcome.rule_name,
        matched_rules=list(outcome.matched_rules),
        used_default=outcome.used_default,
        reasons=list(outcome.reasons),
    )


def _trace(outcome: RoutingOutcome) -> list[TraceStep]:
    steps = []
    for step in outcome.trace or []:
        failure = None
        if step.failure is not None:
            f = step.failure
            failure = ConditionFailureOut(
                path=f.path, field=f.field, op=f.op, expected=f.expected, actual=f.actual, reason=f.reason
            )
        steps.append(
            TraceStep(
                index=step.index,
                rule_id=step.rule_id,
                rule_name=step.rule_name,
                matched=step.matched,
                stopped=step.stopped,
                failure=failure,
            )
        )
    return steps


async def simulate(
    session: AsyncSession, request: SimulateRequest, live: CompiledRuleSet, default_team: str | None
) -> SimulateResponse:
    warnings: list[str] = []
    if request.ruleset is not None:
        draft = effective(request.ruleset.model_copy(update={"version": None}), default_team)
        warnings = [f"{e['field']}: {e['message']}" for e in await check_references(session, draft)]
        compiled = await asyncio.to_thread(compile_ruleset, draft)
    else:
        compiled = live  # compiled once per version by LiveRules; never re-parsed here
    ticket = request.ticket
    facts = facts_from_ticket(
        ticket,
        request.source,
        request.now or utc_now(),
        language=request.language,
        category=request.category,
        category_confidence=request.category_confidence,
        urgency=detected_urgency(ticket.subject, ticket.description, ticket.tags),
    )
    outcome = compiled.evaluate(facts, trace=True)
    return SimulateResponse(
        ruleset_version=None if request.ruleset is not None else compiled.version,
        draft=request.ruleset is not None,
        decision=decision_out(outcome),
        trace=_trace(outcome),
        warnings=warnings,
    )


def facts_of(row: RouterTicket) -> TicketFacts | None:
    """Facts as the router saw them: stored snapshot and enrichment, evaluated as of routing time."""
    try:
        snapshot = TicketSnapshot.model_validate(row.snapshot)
    except ValidationError:
        return None
    now: datetime = row.routed_at or row.created_at
    return facts_from_ticket(
        snapshot,
        row.source,
        now,
        language=row.language,
        category=row.category,
        category_confidence=row.category_confidence,
        urgency=detected_urgency(snapshot.subject, snapshot.description, snapshot.tags),
    )


async def stored_tickets(session: AsyncSession, request: ReplayRequest) -> tuple[list[RouterTicket], bool]:
    """The selected tickets, newest first, at most MAX_REPLAY; and whether the window held more.
    Stubs left by retention are not among them."""
    # A stub left by retention has lost the text rules read: replaying it would misreport.
    query = (
        select(RouterTicket)
        .where(RouterTicket.pruned_at.is_(None))
        .order_by(RouterTicket.created_at.desc(), RouterTicket.ticket_key)
    )
    if request.last is not None:
        return list((await session.scalars(query.limit(request.last))).all()), False
    if request.since is not None:
        query = query.where(RouterTicket.created_at >= request.since)
    if request.until is not None:
        query = query.where(RouterTicket.created_at < request.until)
    rows = list((await session.scalars(query.limit(MAX_REPLAY + 1))).all())
    return rows[:MAX_REPLAY], len(rows) > MAX_REPLAY


def _replay(old: CompiledRuleSet, draft: RuleSet, rows: list[RouterTicket]) -> tuple[ReplayReport, int]:
    new = compile_ruleset(draft)
    facts = [f for f in (facts_of(row) for row in rows) if f is not None]
    return replay(old, new, facts), len(rows) - len(facts)


async def run_replay(
    session: AsyncSession, request: ReplayRequest, old: CompiledRuleSet, default_team: str | None
) -> ReplayResponse:
    rows, truncated = await stored_tickets(session, request)
    draft = effective(request.ruleset.model_copy(update={"version": None}), default_team)
    report, skipped = await asyncio.to_thread(_replay, old, draft, rows)
    return ReplayResponse(
        against_version=old.version,
        total=report.total,
        changed=report.changed,
        skipped=skipped,
        truncated=truncated,
        before=dict(report.before),
        after=dict(report.after),
        transitions=[
            Transition(before=b, after=a, count=n) for (b, a), n in report.transitions.most_common()
        ],
        examples=[
            ReplayExample(
                ticket_key=e.ticket_key,
                before=e.before,
                after=e.after,
                rule_before=e.rule_before,
                rule_after=e.rule_after,
            )
            for e in report.examples
        ],
        text=report.render(),
    )
