"""Sources as webhook requests see them: cached briefly so a webhook costs no DB read.

``POST /v1/tickets`` asks the same cache whether a name is a configured source's (enabled or not)
or a deleted one's: an intake key may post under neither (a source's tickets come signed through
its webhook, and a deleted one's are still in the router, written back to its helpdesk). One read
answers both, so that check costs nothing more than the webhooks' lookup.

A source is read once however many requests ask for it at once (a burst on a cold replica had
opened a pooled connection per request), and re-read in the background once half its time is up,
so that in steady traffic no request waits for the database here. An admin change made through
this replica applies at once; one made through another replica, within ``ttl_s``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from sqlalchemy import Select, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import RetiredSourceName, Source
from services.intake.sources.service import to_config
from services.intake.webhooks import SourceConfig
from shared.caches import make_room

MAX_ENTRIES = 10_000  # bound memory against scans of random names


# Why POST /v1/tickets may not use a name: a source has it (enabled or not), or had it (deleted).
Reserved = Literal["configured", "retired"]

# What a read found: the config of an enabled source with a secret (else None), and why the name
# is reserved (None: it is free).
_Found = tuple[SourceConfig | None, Reserved | None]


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

    async def reserved(self, name: str) -> Reserved | None:
        """``"configured"`` when a source named ``name`` exists (enabled or not), ``"retired"``
        when one was deleted and none has the name since, else None. Raises when it must be read
        and the database cannot be."""
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
            found_row = (await session.execute(_lookup(name))).one()
            # Outer-joined: either is None when absent, which the typed row does not say.
            row: Source | None = found_row[0]
            retired: str | None = found_row[1]
            config = to_config(row) if row is not None and row.enabled and row.secrets else None
        reserved: Reserved | None = "configured" if row is not None else "retired" if retired else None
        found = (config, reserved)
        kept = self._entries.get(name)
        if generation == self._generation and (kept is None or kept[1] < started):  # never older
            # Keep the names in use or retired (few): a flood of random ones fills it with misses.
            make_room(self._entries, MAX_ENTRIES, lambda entry: entry[0][1] is not None)
            self._entries[name] = (found, started)
        return found

    def _finished(self, name: str, done: asyncio.Future[_Found]) -> None:
        reading = self._reading.get(name)
        if reading is not None and reading[0] is done:
            del self._reading[name]
        if not done.cancelled():
            done.exception()  # retrieved here: a background read's failure is not an error to log


def _lookup(name: str) -> Select[Source, str]:
    """The source named ``name`` and its retired name, each None when absent, in one statement (one
    round trip, as the source alone was): both are outer-joined to a one-row anchor, so the answer
    is one row whatever exists."""
    anchor = select(literal_column("1").label("one")).subquery("anchor")
    return (
        select(Source, RetiredSourceName.name)
        .select_from(anchor)
        .outerjoin(Source, Source.name == name)
        .outerjoin(RetiredSourceName, RetiredSourceName.name == name)
    )
