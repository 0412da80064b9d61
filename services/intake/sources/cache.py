"""Sources as webhook requests see them: cached briefly so a webhook costs no DB read."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import Source
from services.intake.sources.service import to_config
from services.intake.webhooks import SourceConfig


class SourceCache:
    """Caches enabled sources (and misses) for ``ttl_s``; admin changes elsewhere apply within it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[SourceConfig | None, float]] = {}

    async def get(self, name: str) -> SourceConfig | None:
        """The source's config, or None when it is unknown or disabled."""
        now = time.monotonic()
        hit = self._entries.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self.sessions() as session:
            row = await session.get(Source, name)
            config = to_config(row) if row is not None and row.enabled and row.secrets else None
        if len(self._entries) > 10_000:  # bound memory against scans of random names
            self._entries.clear()
        self._entries[name] = (config, now + self.ttl_s)
        return config

    def invalidate(self, name: str) -> None:
        self._entries.pop(name, None)
