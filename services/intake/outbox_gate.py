"""May this replica publish straight to the broker? A briefly cached read of "is the outbox empty".

Reading the outbox on every request costs a database round trip (most of intake's latency on
SQLite), so :class:`OutboxGate` shares one read among all requests for ``ttl_s`` seconds.

Why that keeps per-ticket order across replicas. Request B arrives after request A was answered
2xx; A was parked in the outbox (any replica) and committed at time ``c`` (visible to every
read that starts later). B publishes directly only if its replica's cached read said "empty" and
was started at ``r`` with ``r + ttl_s > d``, where ``d`` is B's decision time. A park answers 2xx no
earlier than ``c + ttl_s`` (:meth:`OutboxGate.hold_after_park`), so ``d > c + ttl_s`` and thus
``r > c``: that read started after A's commit and saw A's row, unless the relay had already
deleted it, which it does only after the broker acknowledged A. Either way B lands after A.
Durations are measured on each process's own monotonic clock; the hold adds a margin for clock
rate differences. Parking only happens when the broker is slow or the outbox already has rows,
so the hold costs nothing on the fast path.
"""

from __future__ import annotations

import asyncio
import time

from services.intake.held import HeldConnections

# Also the extra latency of a parked request. Reads on a busy event loop took 20-110 ms in the
# bench; a shorter window turns slow reads into parks (and parks into a degraded second).
OUTBOX_CHECK_TTL_S = 0.1
_HOLD_MARGIN_S = 0.005
_ATTEMPTS = 3
# On one of intake's held connections (services/intake/held.py): through an ORM session a read cost
# about as much CPU as 100 webhooks' share of the delivery ledger.
_PG_ANY_ROW = "SELECT 1 FROM outbox WHERE owner = $1 LIMIT 1"
_SQLITE_ANY_ROW = "SELECT 1 FROM outbox WHERE owner = ? LIMIT 1"


class OutboxGate:
    def __init__(self, held: HeldConnections, owner: str, ttl_s: float = OUTBOX_CHECK_TTL_S) -> None:
        self.held = held
        self.owner = owner
        self.ttl_s = ttl_s
        self._started_at = float("-inf")  # when the cached read was started (before its snapshot)
        self._empty = False
        self._inflight: asyncio.Future[tuple[float, bool]] | None = None

    async def outbox_empty(self) -> bool:
        """True only if a read started less than ``ttl_s`` ago found no rows. Raises when the
        database cannot be read (the caller cannot publish directly then)."""
        for _ in range(_ATTEMPTS):
            age = time.monotonic() - self._started_at
            if age < self.ttl_s:
                if age > self.ttl_s / 2:
                    self._refresh()  # read ahead, so requests rarely wait for one
                return self._empty
            started_at, empty = await asyncio.shield(self._refresh())
            if time.monotonic() < started_at + self.ttl_s:
                return empty
        # Reads slower than ttl_s prove nothing about now: report "not empty" (parking is safe).
        return False

    def forget(self) -> None:
        """Drop the cached answer (rows were deleted): the next request reads again."""
        self._started_at = float("-inf")

    async def hold_after_park(self, committed_at: float) -> None:
        """Delay a park's 2xx until every replica's cached "empty" read predates it (see above)."""
        wait_s = committed_at + self.ttl_s * 1.01 + _HOLD_MARGIN_S - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    def _refresh(self) -> asyncio.Future[tuple[float, bool]]:
        """The read in flight, or a new one: one read at a time, however many requests wait."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._read())
            self._inflight.add_done_callback(self._clear)
        return self._inflight

    async def _read(self) -> tuple[float, bool]:
        started_at = time.monotonic()
        empty = not await self.held.fetch(
            _PG_ANY_ROW if self.held.postgres else _SQLITE_ANY_ROW, [self.owner]
        )
        if started_at > self._started_at:
            self._started_at, self._empty = started_at, empty
        return started_at, empty

    def _clear(self, future: asyncio.Future[tuple[float, bool]]) -> None:
        if self._inflight is future:
            self._inflight = None
        if not future.cancelled():
            future.exception()  # retrieved: the awaiting requests report it
