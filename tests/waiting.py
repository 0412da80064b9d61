"""Waiting, in async tests, for something a background task will bring about."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_for(condition: Callable[[], object], timeout_s: float = 5.0, every_s: float = 0.05) -> None:
    """Poll ``condition`` every ``every_s`` until it holds; fail the test after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout_s} s"
        await asyncio.sleep(every_s)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0, every_s: float = 0.05
) -> None:
    """:func:`wait_for` for a check that has to await (a database query)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout_s} s"
        await asyncio.sleep(every_s)
