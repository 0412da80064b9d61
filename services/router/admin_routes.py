"""The admin API's routers (teams, rules, dry runs, audit, API keys), included by the router app."""

from __future__ import annotations

from fastapi import APIRouter

from services.router.apikeys.endpoints import router as api_keys
from services.router.audit.endpoints import router as audit
from services.router.rulesets.endpoints import router as rules
from services.router.simulation.endpoints import router as simulation
from services.router.teams.endpoints import router as teams


def admin_routers() -> list[APIRouter]:
    return [teams, rules, simulation, audit, api_keys]
