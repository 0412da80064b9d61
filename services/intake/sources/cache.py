"""Sources as webhook requests see them: cached briefly so a webhook costs no DB read.

``POST /v1/tickets`` asks the same cache whether a name is a configured source's (enabled or not):
an intake key may not post under it (the source's tickets come signed through its webhook).

A source is read once however many requests ask for it at once (a burst on a cold replica had
opened a pooled connection per request), and re-read in the background once half its time is up,
so that in steady traffic no request waits for the database here. An admin change made through
this replica applies at once; one made through another replica, within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import Source
from services.intake.sources.service import to_config
from services.intake.webhooks import SourceConfig
from shared.caches import make_room

MAX_ENTRIES = 10_000  # bound memory against scans of random names


# What a read found: the config of an enabled source with a secret (else None), and whether a
# source of that name exists at all (enabled or not).
_Found = tuple[SourceConfig | None, bool]


class SourceCache:
    """Caches enabled sources (and misses) for ``ttl_s``, counted from when their read started."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[_Found, float]] = {}  # name -> (found, read at)
        self._reading: dict[str, tuple[asyncio.Future[_Found], float]] = {}  # with its start
        self._generation = 0  # bumped by invalidate(): a read started before it is not kept

    async def get(self, name: str) -> SourceConfig | None:
        """The source's config, or None when it is unknown or disabled. Raises when it must be
        read and the database cannot be."""
        return (await self._found(name))[0]

    async def configured(self, name: str) -> bool:
        """Whether a source named ``name`` exists, enabled or not. Raises when it must be read and
        the database cannot be."""
        return (await self._found(name))[1]

    async def _found(self, name: str) -> _Found:
        hit = self._entries.get(name)
        if hit is not None:
            age = time.monotonic() - hit[1]
            if age < self.ttl_s:
                if age > self.ttl_s / 2:
                    self._read(name)  # ahead of expiry; its failure leaves the entry as it is
                return hit[0]
        return await asyncio.shield(self._read(name))

    def invalidate(self, name: str) -> None:
        """Forget ``name``: the next request reads it again (a read in flight is not kept)."""
        self._generation += 1
        self._entries.pop(name, None)
        self._reading.pop(name, None)

    def _read(self, name: str) -> asyncio.Future[_Found]:
        """The read of ``name`` in flight, or a new one: not one started ``ttl_s`` ago or more (a
        hung read is not waited for, and a late one would answer with what is no longer current)."""
        now = time.monotonic()
        reading = self._reading.get(name)
        if reading is not None and now - reading[1] < self.ttl_s:
            return reading[0]
        future = asyncio.ensure_future(self._load(name, now))
        future.add_done_callback(lambda done: self._finished(name, done))
        self._reading[name] = (future, now)
        return future

    async def _load(self, name: str, started: float) -> _Found:
        generation = self._generation
        async with self.sessions() as session:
            row = await session.get(Source, name)
            config = to_config(row) if row is not None and row.enabled and row.secrets else None
        found = (config, row is not None)
        kept = self._entries.get(name)
        if generation == self._generation and (kept is None or kept[1] < started):  # never older
            make_room(self._entries, MAX_ENTRIES, lambda entry: entry[0][1])  # keep sources that exist
            self._entries[name] = (found, started)
        return found

    def _finished(self, name: str, done: asyncio.Future[_Found]) -> None:
        reading = self._reading.get(name)
        if reading is not None and reading[0] is done:
            del self._reading[name]
        if not done.cancelled():
            done.exception()  # retrieved here: a background read's failure is not an error to log
