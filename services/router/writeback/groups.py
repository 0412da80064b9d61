"""The helpdesks' groups, read backwards: which of our teams a group a source reports stands for.

A connector target's ``groups`` maps our teams to the helpdesk's groups so that write-back can put
a ticket into the right one. The helpdesk then reports the ticket's group in its next webhook (the
echo of our own write-back, or an agent moving it): without this directory the router would take
Zendesk's ``360001`` for a team of that name. Routers reload it with the SLA configuration.
Disabled targets count too: their deliveries wait in the queue, and a ticket moved before the
target was disabled still reports the group it was moved to.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.writeback.connectors import teams_by_group
from services.router.writeback.models import WritebackTarget
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)


class GroupDirectory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.teams: dict[str, dict[str, str]] = {}  # source -> helpdesk group -> our team

    async def refresh(self) -> None:
        query = select(WritebackTarget.source, WritebackTarget.options).where(
            WritebackTarget.connector != "webhook"
        )
        teams: dict[str, dict[str, str]] = {}
        async with self.sessions() as session:
            for source, options in (await session.execute(query.order_by(WritebackTarget.id))).all():
                for group, team in teams_by_group(options).items():
                    teams.setdefault(source, {}).setdefault(group, team)  # the oldest target wins
        self.teams = teams

    def team_of(self, source: str, group: str) -> str | None:
        return self.teams.get(source, {}).get(group)

    async def watch(self, period_s: float) -> None:
        await repeat_forever(self.refresh, period_s, log, "reloading the helpdesk groups failed")
