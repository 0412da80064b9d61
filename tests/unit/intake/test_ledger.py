"""The delivery ledger's batches: requests that ask while a batch is in flight share the next one."""

from __future__ import annotations

import asyncio

import pytest

from services.intake.ledger import _Batcher


async def test_concurrent_requests_share_a_batch_and_each_gets_its_own_answer() -> None:
    batches: list[list[int]] = []

    async def work(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.01)  # a round trip
        return [item * 10 for item in items]

    batcher: _Batcher[int, int] = _Batcher(work)
    first = [asyncio.ensure_future(batcher.submit(n)) for n in range(5)]
    await asyncio.sleep(0.001)  # the first batch is in flight now
    later = [asyncio.ensure_future(batcher.submit(n)) for n in range(5, 20)]
    assert await asyncio.gather(*first, *later) == [n * 10 for n in range(20)]
    # Those that asked together went together; those that asked meanwhile, in the next batch.
    assert batches == [list(range(5)), list(range(5, 20))]
    assert await batcher.submit(7) == 70  # and a lone request later is served at once


async def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_runs() -> None:
    calls = 0

    async def work(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise ConnectionError("database away")
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)  # each learns it: a 503 each
    assert await batcher.submit(5) == 5


async def test_batches_are_bounded() -> None:
    sizes: list[int] = []

    async def work(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0)
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    await asyncio.gather(*(batcher.submit(n) for n in range(1200)))
    assert max(sizes) <= 500 and sum(sizes) == 1200


@pytest.mark.parametrize("count", [1, 3])
async def test_a_lone_request_waits_for_nobody(count: int) -> None:
    async def work(items: list[int]) -> list[int]:
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    for n in range(count):
        # Answered within a few passes of the event loop: no timer, no wait for a batch to fill.
        submitted = asyncio.ensure_future(batcher.submit(n))
        for _ in range(10):
            await asyncio.sleep(0)
        assert submitted.done() and submitted.result() == n


async def test_a_cancelled_batch_cancels_its_callers_instead_of_leaving_them_waiting() -> None:
    started = asyncio.Event()

    async def work(items: list[int]) -> list[int]:
        started.set()
        await asyncio.sleep(10)
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    first = asyncio.ensure_future(batcher.submit(1))
    await started.wait()
    queued = asyncio.ensure_future(batcher.submit(2))  # waits for the next batch
    await asyncio.sleep(0)
    running = batcher._running
    assert running is not None
    running.cancel()  # as the event loop's shutdown does
    done, _ = await asyncio.wait([first, queued], timeout=1)
    assert done == {first, queued}
    assert first.cancelled() and queued.cancelled()


async def test_requests_of_the_next_pass_of_the_event_loop_join_the_first_batch() -> None:
    batches: list[list[int]] = []

    async def work(items: list[int]) -> list[int]:
        batches.append(items)
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the rest of a burst, read from the sockets a pass later
    second = asyncio.ensure_future(batcher.submit(2))
    assert await asyncio.gather(first, second) == [1, 2]
    assert batches == [[1, 2]]


async def test_a_drain_cancelled_in_its_extra_pass_cancels_the_queued_callers() -> None:
    release = asyncio.Event()
    calls: list[list[int]] = []

    async def work(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            await release.wait()  # the first batch in flight; the second request queues meanwhile
            drain = batcher._running
            assert drain is not None
            asyncio.get_running_loop().call_soon(drain.cancel)  # lands in the drain's extra pass
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    first = asyncio.ensure_future(batcher.submit(1))
    while not calls:
        await asyncio.sleep(0)
    second = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    release.set()
    assert await first == 1
    done, _ = await asyncio.wait([second], timeout=1)
    assert done == {second} and second.cancelled()
    assert calls == [[1]]


async def test_a_drain_cancelled_before_it_ran_leaves_the_batcher_serving() -> None:
    async def work(items: list[int]) -> list[int]:
        return items

    batcher: _Batcher[int, int] = _Batcher(work)
    caller = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)  # the caller queued its item and created the drain task, not yet run
    drain = batcher._running
    assert drain is not None
    drain.cancel()
    done, _ = await asyncio.wait([caller], timeout=1)
    assert done == {caller} and caller.cancelled()  # not left waiting
    assert await asyncio.wait_for(batcher.submit(2), 1) == 2  # and a later request is served
