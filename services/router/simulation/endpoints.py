"""``POST /v1/routing/simulate`` and ``POST /v1/routing/replay``: dry runs (viewer key)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request

from services.router.errors import transaction
from services.router.openapi import READ, problems
from services.router.rules import CompiledRuleSet, compile_ruleset
from services.router.rulesets.service import get_version
from services.router.rulesets.store import ruleset_of
from services.router.simulation import service
from services.router.simulation.schemas import (
    ReplayRequest,
    ReplayResponse,
    SimulateRequest,
    SimulateResponse,
)
from shared.auth import Role, require_role

router = APIRouter(prefix="/v1/routing", tags=["routing"], dependencies=[Depends(require_role(Role.VIEWER))])


async def _live(request: Request) -> CompiledRuleSet:
    """This router's compiled live set; refreshed first (one indexed query) so a dry run right
    after a change already sees it, as GET /v1/rules does."""
    rules = request.app.state.rules
    await rules.refresh()
    compiled: CompiledRuleSet = rules.policy.compiled
    return compiled


@router.post(
    "/simulate",
    response_model=SimulateResponse,
    responses=problems(*READ),
    summary="Route one ticket without side effects; shows every rule evaluated and why",
)
async def simulate(body: SimulateRequest, request: Request) -> SimulateResponse:
    default_team = request.app.state.settings.router_default_team
    async with transaction(request) as session:
        return await service.simulate(session, body, await _live(request), default_team)


@router.post(
    "/replay",
    response_model=ReplayResponse,
    responses=problems(*READ, 404),
    summary="How a draft rule set would have routed stored tickets, compared with the live one",
)
async def replay(body: ReplayRequest, request: Request) -> ReplayResponse:
    default_team = request.app.state.settings.router_default_team
    async with transaction(request) as session:
        if body.against is None:
            old = await _live(request)
        else:
            stored = ruleset_of(await get_version(session, body.against))
            old = await asyncio.to_thread(compile_ruleset, service.effective(stored, default_team))
        return await service.run_replay(session, body, old, default_team)
