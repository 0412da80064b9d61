"""stop_tasks: how the services stop their background tasks on shutdown."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from shared import runtime
from shared.runtime import stop_tasks


async def test_tasks_are_cancelled_and_awaited() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(60), name=f"sleeper-{n}") for n in range(3)]
    await asyncio.sleep(0)
    await stop_tasks(tasks, 5.0)
    assert all(task.cancelled() for task in tasks)


async def test_a_task_that_does_not_end_when_cancelled_is_left_behind_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:  # loses its cancellation, as the outbox relay did
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    began = time.monotonic()
    try:
        with caplog.at_level(logging.ERROR, logger=runtime.log.name):
            await stop_tasks([task], 0.2)
        took = time.monotonic() - began
    finally:
        release.set()
        await task
    assert 0.2 <= took < 2.0
    [record] = [r for r in caplog.records if r.name == runtime.log.name]
    assert record.levelno == logging.ERROR
    assert record.__dict__["task"] == "stubborn"


async def test_a_task_that_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails(), name="failing")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger=runtime.log.name):
        await stop_tasks([task], 1.0)
    [record] = [r for r in caplog.records if r.name == runtime.log.name]
    assert record.__dict__["task"] == "failing"
    assert "boom" in record.__dict__["error"]
