"""CPU work of a batch done while database statements and broker acknowledgements are in flight.

A service process is one thread: a statement's round trip is time the CPU would idle. Running a
statement as a task and the CPU work in slices between event-loop turns lets the database (or
the broker) work on its other core meanwhile, so the two take about as long as the longer of them.

Two kinds of work fill a wait. A batch's own steps (:func:`work_while`), and :class:`IdleWork`:
steps queued for later that may run at any wait, such as the next batch's text work queued by
the consumer loop's look-ahead, which fills the waits of this batch's writes, commit and publish.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")
Step = Callable[[], object]


def in_slices(work: Callable[[Sequence[Item]], object], items: Sequence[Item], size: int) -> list[Step]:
    """``work`` over ``items`` as steps of ``size`` items each, for :func:`work_while`."""
    return [functools.partial(work, items[at : at + size]) for at in range(0, len(items), size)]


@dataclass
class Sliced:
    """``work`` over ``items`` as idle work, ``size`` items a step, or ``wide`` in a wide wait.

    Fewer, bigger calls cost less per item, but a step delays the reply it fills the wait for. A
    wait whose delay holds nothing up (after a commit: no row is locked any more) is wide."""

    work: Callable[[Sequence[Any]], object]
    items: Sequence[Any]
    size: int
    wide: int

    def run_part(self, wide: bool) -> bool:
        """Work on the next part; True when nothing is left."""
        count = self.wide if wide else self.size
        part, self.items = self.items[:count], self.items[count:]
        self.work(part)
        return not self.items


class IdleWork:
    """Steps to run while this process would otherwise wait on I/O, each at most once.

    Idle work is ahead of its time and optional: whoever queued it does what was not done when
    its own turn comes (its steps must be safe to skip or to repeat). A step that fails drops
    the queue: the failure belongs to the owner's own turn, where it is handled as usual, not to
    the batch whose wait it happened to fill.
    """

    def __init__(self) -> None:
        self._steps: deque[Step | Sliced] = deque()
        self.owner: Hashable | None = None

    def replace(self, owner: Hashable, steps: Iterable[Step | Sliced]) -> None:
        """Queue ``steps`` for ``owner`` instead of whatever was queued."""
        self._steps = deque(step for step in steps if not isinstance(step, Sliced) or step.items)
        self.owner = owner

    def discard(self, owner: Hashable) -> None:
        """Drop what is queued for ``owner`` (its turn has come), nothing else."""
        if self.owner == owner:
            self._steps.clear()
            self.owner = None

    def __len__(self) -> int:
        return len(self._steps)

    def run_one(self, wide: bool = False) -> None:
        """Run the next step (of a :class:`Sliced`, the next part: wider in a ``wide`` wait).

        A step may queue another owner's work (``replace``, as the consumer loop's last decoding
        step does): what is popped, or dropped on failure, is the step's own queue only."""
        steps = self._steps
        step = steps[0]
        try:
            if not isinstance(step, Sliced):
                steps.popleft()
                step()
            elif step.run_part(wide) and steps and steps[0] is step:
                steps.popleft()
        except Exception:
            log.debug("idle work failed; its owner will do it in its turn", exc_info=True)
            steps.clear()


async def work_while(
    steps: Iterable[Step],
    io: Awaitable[T],
    *,
    until_done: bool = False,
    idle: IdleWork | None = None,
    wide: bool = False,
) -> T:
    """Run ``io`` (statements on the batch's session) and meanwhile call ``steps``, each one slice
    of CPU work; return what ``io`` returned.

    Before each step the event loop takes a turn, so ``io`` sends its first statement before any
    CPU work and its next one between slices. If a step fails (or the batch is cancelled), ``io``
    is cancelled and awaited before the error goes on: the session is its own until then.

    ``until_done`` makes the steps optional: none is called once ``io`` has finished, and the
    caller does what is left in one go (batched work costs less per item in one big call than in
    slices, which only pay while there is a wait to fill). Once the steps are done, ``idle`` work
    fills the rest of the wait, in its wide parts when ``wide`` (see :class:`Sliced`).
    """
    running = asyncio.ensure_future(io)
    try:
        for step in steps:
            await asyncio.sleep(0)
            if until_done and running.done():
                break
            step()
        while idle and not running.done():
            await asyncio.sleep(0)
            if not running.done():
                idle.run_one(wide)
    except BaseException:
        running.cancel()
        await asyncio.wait([running])
        raise
    return await running


async def during(idle: IdleWork | None, io: Awaitable[T], *, wide: bool = False) -> T:
    """Await ``io``, doing ``idle`` work while it is in flight; ``wide``: see :class:`Sliced`."""
    if not idle:
        return await io
    return await work_while((), io, idle=idle, wide=wide)


async def work_beside(
    steps: Iterable[Step], io: Awaitable[T], *, overlap: bool, idle: IdleWork | None = None
) -> T:
    """:func:`work_while` when ``overlap``; else the steps first, then ``io``. On SQLite there is
    nothing to overlap: its statements run on aiosqlite's thread, which needs the GIL the steps hold.
    """
    if overlap:
        return await work_while(steps, io, idle=idle)
    try:
        for step in steps:
            step()
    except BaseException:
        if inspect.iscoroutine(io):
            io.close()  # never started: close it rather than leave it unawaited
        raise
    return await io
