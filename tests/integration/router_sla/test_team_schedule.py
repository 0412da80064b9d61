"""Capacity from shift schedules: a pool prefers the team on shift; a team off shift gets nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.assignment import LoadConfig
from services.router.load.store import prefetch
from services.router.models import Team
from services.router.routing.policy import RoutingPolicy
from services.router.rules import compile_ruleset, parse_ruleset
from shared.events import Priority, TicketSnapshot, TicketStatus

# Monday 1 June 2026; Berlin is UTC+2 (summer time).
BERLIN_MORNING = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)  # 10:00 local: day shift
BERLIN_EVENING = datetime(2026, 6, 1, 18, 30, tzinfo=UTC)  # 20:30 local: night shift
BERLIN_SUNDAY = datetime(2026, 6, 7, 8, 0, tzinfo=UTC)  # nobody on shift


def schedule(hours: dict[str, str], agents: int) -> dict[str, object]:
    return {
        "timezone": "Europe/Berlin",
        "tickets_per_agent": 3,
        "shifts": [{"name": "main", "hours": hours, "agents": agents}],
    }


async def route_batch(
    session: AsyncSession, pool: list[str], overflow: str, at: datetime, tickets: int
) -> list[str | None]:
    """Route ``tickets`` new tickets as one batch would: one load book, taken at ``at``."""
    rules = {"rules": [{"id": "all", "name": "All", "actions": {"assign_pool": {"teams": pool}}}]}
    policy = RoutingPolicy(compile_ruleset(parse_ruleset(rules)), 1, lambda: at)
    book = await prefetch(session, LoadConfig(weighted=False), overflow, at=at)
    teams = []
    for i in range(tickets):
        team = policy.route(TicketSnapshot(external_id=str(i), subject="help"), "api", loads=book).team
        book.move(None, (team, TicketStatus.OPEN, Priority.P3))
        teams.append(team)
    return teams


async def test_pool_prefers_team_on_shift_and_gives_off_shift_team_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tag = uuid.uuid4().hex[:8]
    day, night, spill = f"day-{tag}", f"night-{tag}", f"spill-{tag}"
    async with sessions() as session, session.begin():
        session.add_all(
            [
                # capacity is ignored while a schedule is set: 2 agents x 3 = 6 on shift, 0 off.
                Team(name=day, capacity=100, schedule=schedule({"mon-fri": "09:00-17:00"}, 2)),
                Team(name=night, capacity=100, schedule=schedule({"mon-fri": "18:00-23:00"}, 1)),
                Team(name=spill, capacity=1000),
            ]
        )
        await session.flush()

        morning = await route_batch(session, [night, day], spill, BERLIN_MORNING, 8)
        assert morning == [day] * 6 + [spill] * 2  # night is off shift; day is full after 6

        evening = await route_batch(session, [day, night], spill, BERLIN_EVENING, 4)
        assert evening == [night] * 3 + [spill]  # day went home; one night agent carries 3

        book = await prefetch(session, LoadConfig(), spill, at=BERLIN_SUNDAY)
        assert (book.capacities[day], book.capacities[night], book.capacities[spill]) == (0, 0, 1000)
        await session.rollback()
