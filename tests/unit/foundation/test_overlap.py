"""CPU steps beside a batch's statements (services/router/routing/overlap.py): the order things
happen in, and what a failing step leaves behind."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from services.router.routing.overlap import in_slices, work_beside, work_while


def recorder() -> tuple[list[str], Callable[[], Coroutine[Any, Any, str]]]:
    log: list[str] = []

    async def io() -> str:
        log.append("io started")
        await asyncio.sleep(0.01)  # a round trip
        log.append("io done")
        return "rows"

    return log, io


def steps(log: list[str], n: int) -> list[Callable[[], object]]:
    return in_slices(lambda items: log.append(f"step {items[0]}"), list(range(n)), 1)


async def test_overlapped_steps_run_while_the_statement_is_in_flight():
    log, io = recorder()
    assert await work_beside(steps(log, 3), io(), overlap=True) == "rows"
    assert log == ["io started", "step 0", "step 1", "step 2", "io done"]


async def test_without_overlap_the_steps_run_first_then_the_statement():
    log, io = recorder()
    assert await work_beside(steps(log, 3), io(), overlap=False) == "rows"
    assert log == ["step 0", "step 1", "step 2", "io started", "io done"]


def failing_steps(log: list[str]) -> list[Callable[[], object]]:
    def fail() -> None:
        raise ValueError("bad ticket")

    return [lambda: log.append("step 0"), fail, lambda: log.append("never")]


@pytest.mark.parametrize("overlap", [True, False])
async def test_a_failing_step_stops_the_statement_and_leaves_nothing_unawaited(overlap: bool):
    log, io = recorder()
    statement = io()
    with pytest.raises(ValueError, match="bad ticket"):
        await work_beside(failing_steps(log), statement, overlap=overlap)
    assert inspect.getcoroutinestate(statement) == inspect.CORO_CLOSED
    assert "never" not in log and "io done" not in log
    # Overlapped, the statement had started and was cancelled; otherwise it never started.
    assert ("io started" in log) is overlap


async def test_until_done_leaves_the_remaining_steps_to_the_caller():
    log: list[str] = []
    done = asyncio.get_running_loop().create_future()
    done.set_result("rows")
    assert await work_while(steps(log, 3), done, until_done=True) == "rows"
    assert log == []  # the reads were back before the first step
