"""CPU work of a batch done while the batch's database statements are in flight.

One router process is one thread: a statement's round trip is time the CPU would idle. Running a
statement as a task and the CPU work in slices between event-loop turns lets the database work
on its other core meanwhile, so the two take about as long as the longer of them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
Item = TypeVar("Item")


def in_slices(
    work: Callable[[Sequence[Item]], object], items: Sequence[Item], size: int
) -> list[Callable[[], object]]:
    """``work`` over ``items`` as steps of ``size`` items each, for :func:`work_while`."""
    return [functools.partial(work, items[at : at + size]) for at in range(0, len(items), size)]


async def work_while(
    steps: Iterable[Callable[[], object]], io: Awaitable[T], *, until_done: bool = False
) -> T:
    """Run ``io`` (statements on the batch's session) and meanwhile call ``steps``, each one slice
    of CPU work; return what ``io`` returned.

    Before each step the event loop takes a turn, so ``io`` sends its first statement before any
    CPU work and its next one between slices. If a step fails (or the batch is cancelled), ``io``
    is cancelled and awaited before the error goes on: the session is its own until then.

    ``until_done`` makes the steps optional: none is called once ``io`` has finished, and the
    caller does what is left in one go (batched work costs less per item in one big call than in
    slices, which only pay while there is a wait to fill).
    """
    running = asyncio.ensure_future(io)
    try:
        for step in steps:
            await asyncio.sleep(0)
            if until_done and running.done():
                break
            step()
    except BaseException:
        running.cancel()
        await asyncio.wait([running])
        raise
    return await running


async def work_beside(steps: Iterable[Callable[[], object]], io: Awaitable[T], *, overlap: bool) -> T:
    """:func:`work_while` when ``overlap``; else the steps first, then ``io``. On SQLite there is
    nothing to overlap: its statements run on aiosqlite's thread, which needs the GIL the steps hold.
    """
    if overlap:
        return await work_while(steps, io)
    try:
        for step in steps:
            step()
    except BaseException:
        if inspect.iscoroutine(io):
            io.close()  # never started: close it rather than leave it unawaited
        raise
    return await io
