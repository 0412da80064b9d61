"""The live SLA configuration of one router, hot-reloaded like the rule set."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.slas.service import config_version, load_config
from services.router.slas.tracking import SlaConfig
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)


class LiveSla:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.config = SlaConfig()
        self.version = -1
        # The watcher and the escalation scanner both refresh: one load at a time, so that a slower,
        # older load cannot finish last and put an older configuration back.
        self._loading = asyncio.Lock()

    async def refresh(self) -> bool:
        async with self._loading, self.sessions() as session:
            if await config_version(session) == self.version:
                return False
            self.config = await load_config(session)
        self.version = self.config.version
        log.info("SLA configuration loaded", extra={"version": self.version})
        return True

    async def watch(self, poll_s: float) -> None:
        # A failed refresh keeps the configuration we have.
        await repeat_forever(self.refresh, poll_s, log, "SLA configuration refresh failed")
