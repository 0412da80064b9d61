"""CPU steps beside a batch's statements (shared/overlap.py): the order things
happen in, and what a failing step leaves behind."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from shared.overlap import IdleWork, Sliced, during, in_slices, work_beside, work_while


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


async def test_idle_work_fills_the_wait_after_the_batchs_own_steps_and_stops_when_the_io_is_back():
    log, io = recorder()
    idle = IdleWork()

    def idle_step(n: int) -> Callable[[], object]:
        def step() -> None:
            log.append(f"idle {n}")
            time.sleep(0.004)  # a few milliseconds of CPU: the 10 ms round trip ends after a few

        return step

    idle.replace("next batch", [idle_step(n) for n in range(100)])
    assert await work_while(steps(log, 1), io(), idle=idle) == "rows"
    assert log[:3] == ["io started", "step 0", "idle 0"]
    assert log[-1] == "io done"
    done = sum(entry.startswith("idle") for entry in log)
    assert 0 < done < 100 and len(idle) == 100 - done  # the rest waits for the next wait


async def test_during_does_idle_work_only_while_the_io_is_in_flight():
    log, io = recorder()
    idle = IdleWork()
    idle.replace("next", [lambda: log.append("idle")] * 3)
    assert await during(idle, io()) == "rows"
    assert log == ["io started", "idle", "idle", "idle", "io done"]
    assert await during(None, io()) == "rows"


async def test_a_failing_idle_step_drops_the_queue_not_the_batch_it_filled_in_for():
    log, io = recorder()
    idle = IdleWork()

    def fail() -> None:
        raise ValueError("bad ticket in the next batch")

    idle.replace("next", [lambda: log.append("idle 0"), fail, lambda: log.append("never")])
    assert await during(idle, io()) == "rows"
    assert log == ["io started", "idle 0", "io done"]
    assert len(idle) == 0  # the next batch does its own work in its turn, where errors count


def test_idle_work_is_discarded_only_by_its_owner():
    idle = IdleWork()
    idle.replace("batch 2", [lambda: None, lambda: None])
    idle.discard("batch 1")
    assert len(idle) == 2
    idle.discard("batch 2")
    assert len(idle) == 0


async def test_sliced_idle_work_takes_narrow_parts_unless_the_wait_is_wide():
    parts: list[Sequence[int]] = []
    idle = IdleWork()
    idle.replace(
        "next", [Sliced(parts.append, list(range(10)), size=2, wide=5), Sliced(parts.append, [], 2, 5)]
    )
    assert len(idle) == 1  # nothing to do for an empty one
    idle.run_one()
    idle.run_one(wide=True)
    assert parts == [[0, 1], [2, 3, 4, 5, 6]]
    assert len(idle) == 1  # the rest stays queued
    idle.run_one(wide=True)
    assert parts[-1] == [7, 8, 9] and len(idle) == 0


async def test_during_a_wide_wait_takes_wide_parts():
    parts: list[Sequence[int]] = []

    def slow(part: Sequence[int]) -> None:
        parts.append(part)
        time.sleep(0.004)

    for wide, size in ((False, 2), (True, 8)):
        parts.clear()
        _, io = recorder()
        idle = IdleWork()
        idle.replace("next", [Sliced(slow, list(range(1000)), size=2, wide=8)])
        assert await during(idle, io(), wide=wide) == "rows"
        assert parts and all(len(part) == size for part in parts)


def test_a_step_that_queues_another_owners_work_keeps_it_queued():
    idle = IdleWork()
    ran: list[str] = []

    def hand_over(part: Sequence[int]) -> None:
        idle.replace("batch 3", [lambda: ran.append("batch 3's first"), lambda: None])

    def hand_over_then_fail() -> None:
        idle.replace("batch 4", [lambda: ran.append("batch 4's first")])
        raise ValueError("a bad record")

    idle.replace("batch 2", [Sliced(hand_over, [1], size=1, wide=1)])
    idle.run_one()
    assert idle.owner == "batch 3" and len(idle) == 2
    idle.run_one()
    assert ran == ["batch 3's first"]
    idle.replace("batch 3", [hand_over_then_fail])
    idle.run_one()  # its own queue is dropped, not the one it handed over to
    assert idle.owner == "batch 4" and len(idle) == 1
