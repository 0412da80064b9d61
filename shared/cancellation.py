"""Cancellation that is not lost on its way.

A task's cancellation can vanish: forwarded to a task it awaited that then ends otherwise, swallowed
by Python 3.11's ``asyncio.wait_for`` when its result arrives at the same moment, or replaced by the
error of a driver's cleanup in a ``finally``. A loop that takes that for an ordinary outcome runs
on, and a shutdown awaiting it never ends.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Re-raise when the current task is being cancelled (not just a task it awaited), however
    the cancellation was lost on its way (above)."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether ``event`` was set within ``timeout_s``. Not ``asyncio.wait_for``: on Python 3.11 it
    returns normally when its task is cancelled as the event is set, and the cancellation is lost."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
