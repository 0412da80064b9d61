"""The consumer runner replaces a consumer whose rebalance never ends (tansu can leave a surviving
member looping in JoinGroup/SyncGroup after another member was killed), and only then."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from shared import runtime
from shared.kafka import runner as runner_module
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.runner import CONSUMER_RESTARTS, ConsumerRunner
from shared.settings import ConsumerSettings
from tests.unit.foundation.test_consumer_loop import TP, FakeConsumer, FakeProducer, good, record


class StuckConsumer(FakeConsumer):
    """Joins and never gets an assignment: getmany waits for it for ever, as aiokafka's does."""

    def __init__(self) -> None:
        super().__init__([good(1)])
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[ConsumerRecord]]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class JoiningConsumer(StuckConsumer):
    """Gets its partition at the first poll, then serves its messages."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[ConsumerRecord]]:
        if not self.committed and self.listener is not None and not getattr(self, "joined", False):
            self.joined = True
            await self.listener.on_partitions_assigned({TP})
        return await FakeConsumer.getmany(self, timeout_ms, max_records)


def restarts(group: str) -> float:
    return CONSUMER_RESTARTS.labels(group)._value.get()


def tickets_runner(
    settings: ConsumerSettings,
    group: str,
    handler: Callable[[list[ConsumedEvent]], Awaitable[None]],
    factory: Callable[[], Any],
) -> ConsumerRunner:
    """A runner of ``group`` on the tickets topic, its consumers made by ``factory``."""
    return ConsumerRunner(
        settings,
        FakeProducer(),
        group_id=group,
        topics=["tickets"],
        handler=handler,
        consumer_factory=factory,
    )


async def run_runner(
    consumers: list[StuckConsumer], group: str, handled: list[str], seconds: float
) -> ConsumerRunner:
    made = iter(consumers)
    settings = ConsumerSettings(consumer_stuck_rebalance_s=0.3, consumer_poll_timeout_ms=10)

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.envelope.ticket_key for e in events)

    runner = tickets_runner(settings, group, handler, lambda: next(made))
    await runner.start()
    await asyncio.sleep(seconds)
    await runner.stop(timeout_s=1)
    return runner


async def test_a_consumer_stuck_in_a_rebalance_is_replaced_and_the_new_one_consumes(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    stuck, fresh = StuckConsumer(), JoiningConsumer()
    handled: list[str] = []
    before = restarts("stuck-group")
    await run_runner([stuck, fresh], "stuck-group", handled, seconds=1.0)
    assert stuck.started and stuck.stopped  # left behind, closed
    assert fresh.started and handled == ["api:1"] and fresh.committed == [{TP: 1}]
    assert restarts("stuck-group") == before + 1  # once: the new consumer was assigned


async def test_an_assigned_consumer_is_never_replaced(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    consumer = JoiningConsumer()
    handled: list[str] = []
    before = restarts("healthy-group")
    await run_runner([consumer], "healthy-group", handled, seconds=1.0)  # a second consumer: StopIteration
    assert handled == ["api:1"] and restarts("healthy-group") == before


class FailingConsumer(JoiningConsumer):
    """Assigned, then its loop dies of an error nobody foresaw (its poll raises)."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[ConsumerRecord]]:
        if self.listener is not None and not getattr(self, "joined", False):
            self.joined = True
            await self.listener.on_partitions_assigned({TP})
        raise RuntimeError("a bug in a library")


async def test_a_consumer_whose_loop_failed_is_replaced_and_the_new_one_consumes(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    failing, fresh = FailingConsumer(), JoiningConsumer()
    handled: list[str] = []
    before = restarts("failed-group")
    await run_runner([failing, fresh], "failed-group", handled, seconds=0.5)
    assert failing.stopped  # it left the group, so its partitions go to a live member
    assert handled == ["api:1"] and fresh.committed == [{TP: 1}]
    assert restarts("failed-group") == before + 1


class SlowToLeave(StuckConsumer):
    async def stop(self) -> None:
        await asyncio.sleep(1.0)  # leaving a group whose coordination is stuck
        self.stopped = True


async def test_stopping_while_a_stuck_consumer_is_being_replaced_still_shuts_down(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    # Stuck from 0.3 s, so at 0.4 s the watchdog is closing the stuck consumer (1 s) to replace it.
    runner = await run_runner([SlowToLeave(), SlowToLeave()], "slow-group", [], seconds=0.4)
    assert runner.watchdog is not None and runner.watchdog.done()  # stop returned: SIGTERM goes on


async def test_stopping_while_waiting_for_a_rebalance_to_end_does_not_wait_for_it():
    # aiokafka's poll waits for the next assignment without limit: SIGTERM during a rebalance (the
    # others of a rolling deploy going) held the shutdown for the whole drain timeout (15 s, twice
    # in the metrics service) though the loop had nothing to drain: what it handled was committed
    # when its partitions were revoked.
    settings = ConsumerSettings(consumer_stuck_rebalance_s=60, consumer_poll_timeout_ms=10)

    async def handler(events: list[ConsumedEvent]) -> None:
        raise AssertionError("no assignment, no batch")

    consumer = StuckConsumer()
    runner = tickets_runner(settings, "rebalancing-group", handler, lambda: consumer)
    await runner.start()
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await runner.stop(timeout_s=5)
    assert time.monotonic() - started < 1
    assert consumer.stopped and not runner.alive  # it left the group


class HungOnLeaving(JoiningConsumer):
    """Assigned and consuming, then its broker stops answering: leaving the group never returns."""

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_a_consumer_whose_stop_hangs_does_not_hold_the_shutdown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # A black-holed broker: aiokafka's LeaveGroup waits for its request timeout (40 s) and more,
    # past the pod's grace period (40 s, most of it spent draining), and the process is killed
    # before it closes its database pool and producer.
    monkeypatch.setattr(runner_module, "CONSUMER_CLOSE_TIMEOUT_S", 0.2)
    settings = ConsumerSettings(consumer_stuck_rebalance_s=60, consumer_poll_timeout_ms=10)
    handled: list[str] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.envelope.ticket_key for e in events)

    consumer = HungOnLeaving()
    runner = tickets_runner(settings, "hung-group", handler, lambda: consumer)
    await runner.start()
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await asyncio.wait_for(runner.stop(timeout_s=1), timeout=5)
    assert time.monotonic() - started < 1
    assert handled == ["api:1"] and consumer.committed == [{TP: 1}]  # drained before leaving
    assert "consumer did not stop" in caplog.text


class StuckAndHungOnLeaving(StuckConsumer):
    """Stuck in its rebalance, and leaving the group never returns either."""

    async def stop(self) -> None:
        await asyncio.Event().wait()


async def test_a_stuck_consumer_whose_stop_hangs_is_replaced_after_the_bound_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    monkeypatch.setattr(runner_module, "STUCK_CONSUMER_CLOSE_TIMEOUT_S", 0.2)
    caplog.set_level("INFO", logger=runner_module.__name__)
    caplog.set_level("INFO", logger="shared.runtime")
    fresh = JoiningConsumer()
    handled: list[str] = []
    await run_runner([StuckAndHungOnLeaving(), fresh], "hung-stuck-group", handled, seconds=1.2)
    assert handled == ["api:1"] and fresh.committed == [{TP: 1}]
    gave_up = [r for r in caplog.records if r.getMessage().startswith("replaced consumer did not stop")]
    assert [r.levelname for r in gave_up] == ["INFO"]  # expected of a stuck member: no warning


class StuckAndFailingToLeave(StuckConsumer):
    async def stop(self) -> None:
        raise RuntimeError("the coordinator is gone")


async def test_a_stuck_consumer_whose_stop_fails_is_replaced_all_the_same(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    fresh = JoiningConsumer()
    handled: list[str] = []
    await run_runner([StuckAndFailingToLeave(), fresh], "failing-stuck-group", handled, seconds=1.0)
    assert handled == ["api:1"] and fresh.committed == [{TP: 1}]


def three_single_event_batches() -> tuple[ConsumerSettings, JoiningConsumer]:
    """A consumer holding three events, taken one per batch; the commit interval is so long that
    only the first batch is committed before the stop (at once), the rest at the stop."""
    settings = ConsumerSettings(
        consumer_stuck_rebalance_s=60,
        consumer_poll_timeout_ms=10,
        consumer_batch_max=1,
        consumer_commit_interval_ms=60_000,
    )
    consumer = JoiningConsumer()
    consumer.pending = [record(i, good(i)) for i in range(3)]
    return settings, consumer


async def test_a_drain_cut_short_still_commits_the_batches_handled_before_the_one_in_hand():
    # A batch whose handler outlives the drain timeout (a statement waiting out a 30 s timeout
    # on a stalled database) was cancelled, and with it the loop's final commit: the batches
    # handled before it but not committed yet (the commit interval) were delivered again.
    settings, consumer = three_single_event_batches()
    handled: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        if events[0].offset == 2:
            await asyncio.Event().wait()  # the database stopped answering
        handled.extend(e.offset for e in events)

    runner = tickets_runner(settings, "cut-short-group", handler, lambda: consumer)
    await runner.start()
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await runner.stop(timeout_s=1)
    assert time.monotonic() - started < 1.5  # within the drain's bound
    assert handled == [0, 1]
    assert consumer.committed == [{TP: 1}, {TP: 2}]  # the first at once, the second at the stop


class FirstCommitHangs(FakeConsumer):
    """Its first commit never gets an answer (the group's coordinator moving); later ones do."""

    def __init__(self, values: list[bytes]) -> None:
        super().__init__(values)
        self.commit_started = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def commit(self, offsets: dict[Any, int]) -> None:
        if not self.commit_started.is_set():
            self.commit_started.set()
            await asyncio.Event().wait()
        await super().commit(offsets)


async def test_a_drain_that_cuts_a_commit_short_still_commits_its_offsets():
    # The loop's commit in flight when the drain's deadline cancelled it had taken the offsets
    # with it: the final commit found none, and the batch came again, its dead letter sent twice.
    consumer = FirstCommitHangs([b"not json", good(1)])
    settings = ConsumerSettings(consumer_poll_timeout_ms=10, consumer_commit_interval_ms=0)
    producer = FakeProducer()
    runner = ConsumerRunner(
        settings,
        producer,
        group_id="commit-cut-short-group",
        topics=["tickets"],
        handler=lambda events: asyncio.sleep(0),
        consumer_factory=lambda: consumer,
    )
    await runner.start()
    await asyncio.wait_for(consumer.commit_started.wait(), 5)
    await runner.stop(timeout_s=1)
    assert len(producer.sent) == 1
    assert consumer.committed == [{TP: 2}]  # by the final commit, past the dead letter


class FailingAfterTwo(JoiningConsumer):
    """Serves two records, one a poll, then its poll fails on an error nobody foresaw."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[ConsumerRecord]]:
        if not self.pending and getattr(self, "joined", False):
            raise RuntimeError("a bug in a library")
        return await super().getmany(timeout_ms, 1)


async def test_a_consumer_whose_loop_failed_commits_what_it_handled_before_it_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
):
    # The new member starts from the group's commit: what the failed loop handled after its last
    # commit (the commit interval) was handled again, its dead letters sent again.
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 0.05)
    failing, fresh = FailingAfterTwo(), JoiningConsumer()
    failing.pending = [record(0, good(0)), record(1, good(1))]
    fresh.pending = []
    settings = ConsumerSettings(
        consumer_stuck_rebalance_s=60, consumer_poll_timeout_ms=10, consumer_commit_interval_ms=60_000
    )
    made = iter([failing, fresh])

    async def handler(events: list[ConsumedEvent]) -> None:
        pass

    runner = tickets_runner(settings, "failed-handled-group", handler, lambda: next(made))
    await runner.start()
    await asyncio.sleep(0.5)
    await runner.stop(timeout_s=1)
    assert runner.consumer is fresh and failing.stopped
    assert failing.committed == [{TP: 1}, {TP: 2}]  # the first at once, the second before leaving


async def test_a_stop_after_the_loop_failed_commits_what_it_handled(monkeypatch: pytest.MonkeyPatch):
    # SIGTERM before the watchdog replaced the failed loop: nobody committed what it handled.
    monkeypatch.setattr(runner_module, "WATCH_PERIOD_S", 60)
    failing = FailingAfterTwo()
    failing.pending = [record(0, good(0)), record(1, good(1))]
    settings = ConsumerSettings(
        consumer_stuck_rebalance_s=60, consumer_poll_timeout_ms=10, consumer_commit_interval_ms=60_000
    )

    async def handler(events: list[ConsumedEvent]) -> None:
        pass

    runner = tickets_runner(settings, "failed-then-stopped-group", handler, lambda: failing)
    await runner.start()
    await asyncio.sleep(0.3)
    assert not runner.alive
    await runner.stop(timeout_s=1)
    assert failing.committed == [{TP: 1}, {TP: 2}] and failing.stopped


async def test_a_watchdog_that_lost_its_cancellation_does_not_hold_the_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # A cancellation lost on its way (a driver's cleanup error replacing it, see
    # shared.cancellation) let the watchdog run on, and the stop awaiting it never returned: the
    # process was killed at the end of its grace period without closing its pool and producer.
    monkeypatch.setattr(runtime, "TASK_STOP_TIMEOUT_S", 0.2)
    settings = ConsumerSettings(consumer_stuck_rebalance_s=60, consumer_poll_timeout_ms=10)
    consumer = JoiningConsumer()

    async def handler(events: list[ConsumedEvent]) -> None:
        pass

    async def watch_losing_its_cancellation() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # lost: runs on (a second cancellation ends it, so the test fails, not hangs)
        await asyncio.sleep(60)

    runner = tickets_runner(settings, "lost-cancel-group", handler, lambda: consumer)
    monkeypatch.setattr(runner, "_watch", watch_losing_its_cancellation)
    await runner.start()
    await asyncio.sleep(0.1)
    started = time.monotonic()
    try:
        await asyncio.wait_for(runner.stop(timeout_s=1), timeout=3)
        took = time.monotonic() - started
    finally:
        assert runner.watchdog is not None
        runner.watchdog.cancel()
    assert took < 1.5
    assert consumer.stopped  # the stop went on: drained and left the group
    assert "did not end when cancelled" in caplog.text


async def test_a_loop_that_lost_its_cancellation_does_not_hold_the_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # The drain cancels a batch that outlasts its bound, then waited for the loop without one: a
    # handler whose cancellation was lost (a driver's cleanup error replacing it) held the stop
    # until the pod was killed, without committing what was handled nor leaving the group.
    monkeypatch.setattr(runtime, "TASK_STOP_TIMEOUT_S", 0.2)
    settings, consumer = three_single_event_batches()

    async def handler(events: list[ConsumedEvent]) -> None:
        if events[0].offset == 2:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass  # lost: runs on (a second cancellation ends it, so the test fails, not hangs)
            await asyncio.sleep(60)

    runner = tickets_runner(settings, "lost-cancel-loop-group", handler, lambda: consumer)
    await runner.start()
    await asyncio.sleep(0.2)
    loop_task = runner.task
    assert loop_task is not None
    started = time.monotonic()
    try:
        await asyncio.wait_for(runner.stop(timeout_s=1), timeout=3)
        took = time.monotonic() - started
    finally:
        loop_task.cancel()
    assert took < 1.5  # the drain's bound and the loop's stop bound
    assert consumer.committed == [{TP: 1}, {TP: 2}]  # what was handled, at the stop
    assert consumer.stopped  # it left the group
    assert "did not end when cancelled" in caplog.text
