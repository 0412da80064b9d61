"""A step of a background loop (a relay round, a refresh, a checkpoint) cancelled while the
database goes away: SQLAlchemy's cleanup in a ``finally`` (a rollback) fails, and its error replaces
the CancelledError. A loop that takes it for a failed step runs on, and a shutdown awaiting it
never ends."""

from __future__ import annotations

import asyncio
from typing import Any


class CancellationTurnedIntoError:
    """An awaitable step that waits to be cancelled; the first time, it fails with a connection
    error instead (once: a second cancellation ends a loop that ran on, so a test fails, not hangs)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        self.started.set()
        try:
            await asyncio.sleep(60)
        finally:
            if self.calls == 1:
                raise ConnectionError("connection is closed")
        return 0


async def ends_when_cancelled(task: asyncio.Task[Any], within_s: float = 2.0) -> bool:
    """Cancel ``task`` and whether it ended, cancelled, within ``within_s``."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:  # cancelled again: the test fails instead of hanging in its teardown
        task.cancel()
        await asyncio.wait({task}, timeout=within_s)
        return False
    return task.cancelled()
