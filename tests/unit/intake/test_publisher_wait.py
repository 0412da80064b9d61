"""The publisher's bounded wait for broker acknowledgements: it returns when all sends are answered
or at the deadline, and never cancels a send (a timed-out send may still be delivered)."""

from __future__ import annotations

import asyncio

from services.intake.publisher import wait_done_or_deadline


async def test_returns_once_every_future_is_done() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    loop.call_later(0.01, first.set_result, None)
    loop.call_later(0.02, second.set_exception, RuntimeError("broker said no"))
    started = loop.time()
    await wait_done_or_deadline(loop, [first, second], started + 5.0)
    assert first.done() and second.done()
    assert loop.time() - started < 2.0  # did not sit out the deadline
    assert isinstance(second.exception(), RuntimeError)


async def test_deadline_leaves_pending_sends_alone() -> None:
    loop = asyncio.get_running_loop()
    answered, pending = loop.create_future(), loop.create_future()
    answered.set_result(None)
    started = loop.time()
    await wait_done_or_deadline(loop, [answered, pending], started + 0.05)
    assert loop.time() - started >= 0.04
    assert not pending.done()  # not cancelled: the producer may still deliver it
    pending.set_result(None)  # and its later answer is still seen by whoever holds it
    assert pending.result() is None


async def test_cancelling_the_waiter_does_not_cancel_the_sends() -> None:
    loop = asyncio.get_running_loop()
    send = loop.create_future()
    waiting = asyncio.ensure_future(wait_done_or_deadline(loop, [send], loop.time() + 5.0))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled()
    assert not send.cancelled()
    send.set_result(None)


async def test_deadline_already_past_returns_at_once() -> None:
    loop = asyncio.get_running_loop()
    pending = loop.create_future()
    waiting = asyncio.ensure_future(wait_done_or_deadline(loop, [pending], loop.time() - 1.0))
    for _ in range(5):  # a few passes of the event loop, no time to wait in
        await asyncio.sleep(0)
    assert waiting.done() and waiting.result() is None
    assert not pending.done()
