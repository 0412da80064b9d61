"""repeat_forever: the background jobs' loop (rule, classifier and SLA refreshes, the escalation
scanner, the write-back sender, intake's delivery pruning)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.runtime import repeat_forever
from tests.cancelling import CancellationTurnedIntoError, ends_when_cancelled

log = logging.getLogger("tests.repeat_forever")


async def test_a_failed_step_is_logged_and_the_next_period_runs_it_again(caplog: pytest.LogCaptureFixture):
    calls = 0
    third_call = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database unreachable")
        if calls == 3:
            third_call.set()

    with caplog.at_level(logging.WARNING, logger=log.name):
        job = asyncio.create_task(repeat_forever(step, 0.01, log, "refresh failed"))
        await asyncio.wait_for(third_call.wait(), 5)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    failures = [r for r in caplog.records if r.name == log.name]
    assert [r.getMessage() for r in failures] == ["refresh failed"]
    assert "database unreachable" in failures[0].__dict__["error"]


async def test_cancelling_ends_it_even_while_a_step_runs():
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.sleep(60)

    job = asyncio.create_task(repeat_forever(step, 0.01, log, "never logged"))
    await asyncio.wait_for(started.wait(), 5)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(job, 5)


async def test_cancelling_ends_it_when_the_step_turns_the_cancellation_into_an_error():
    # SQLAlchemy's ping on checkout rolls back in a ``finally``: cancelled while the database is
    # away, that rollback fails and its error replaces the CancelledError. The loop took it for a
    # failed step and ran on, and the shutdown awaiting it never ended.
    step = CancellationTurnedIntoError()
    job = asyncio.create_task(repeat_forever(step, 0.01, log, "refresh failed"))
    await asyncio.wait_for(step.started.wait(), 5)
    assert await ends_when_cancelled(job), (
        f"still running after its cancellation (step called {step.calls} times)"
    )
