"""Whether the teams that rules and SLA policies name can take tickets: one check for both."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.models import Team


async def team_states(session: AsyncSession) -> dict[str, bool]:
    """Every team's name -> active."""
    return {name: active for name, active in await session.execute(select(Team.name, Team.active))}


def team_problem(teams: Mapping[str, bool], team: str) -> str | None:
    """Why ``team`` cannot be named ("unknown team", "inactive team"), or None."""
    if teams.get(team):
        return None
    return "inactive team" if team in teams else "unknown team"
