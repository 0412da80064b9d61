"""A commit that keeps failing (a missing ACL, a coordinator refusing) is logged without a flood:
once at first, then at most once per interval with the repeats counted, and once when commits
succeed again; the counter counts every failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, KafkaTimeoutError, UnknownError

from shared.kafka.commit_failures import COMMIT_FAILURES, CommitFailureLog
from tests.unit.foundation.test_consumer_loop import (
    TP,
    FakeConsumer,
    FakeProducer,
    RefusingConsumer,
    good,
    make_loop,
)
from tests.unit.foundation.test_offset_continuity import Clock

LOGGERS = ("shared.kafka.consumer", "shared.kafka.commit_failures")


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    for name in LOGGERS:
        caplog.set_level(logging.INFO, logger=name)
    return lambda: [r for r in caplog.records if r.name in LOGGERS and "commit" in r.getMessage()]


def field(record: logging.LogRecord, name: str) -> Any:
    """A value the line was logged with (``extra``); None when it has none."""
    return record.__dict__.get(name)


def failures(group: str) -> float:
    return COMMIT_FAILURES.labels(group)._value.get()


async def handle_nothing(events) -> None:
    pass


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


async def test_a_commit_failing_at_every_opportunity_is_logged_at_a_bounded_rate_and_counted_each_time(
    lines: Callable[[], list[logging.LogRecord]],
):
    # Every idle poll (10 ms here, 200 ms by default) is a commit opportunity: a group whose
    # commits are refused for good logged a warning each time, five a second per consumer.
    consumer = RefusingConsumer([good(1)], GroupAuthorizationFailedError("test"), refusals=10**6)
    clock = Clock()
    loop = make_loop(
        consumer, FakeProducer(), handle_nothing, commit_failures=CommitFailureLog("test", clock=clock)
    )
    before = failures("test")
    task = asyncio.create_task(loop.run())
    try:
        await until(lambda: consumer.attempts >= 10)
        (first,) = lines()
        assert first.levelno == logging.WARNING
        assert first.getMessage() == "commit failed, kept for the next one"
        assert "GroupAuthorizationFailedError" in field(first, "error") and field(first, "suppressed") is None

        clock.now = 59.0  # within the interval: still that one line
        seen = consumer.attempts
        await until(lambda: consumer.attempts >= seen + 3)
        assert len(lines()) == 1

        clock.now = 60.0  # the interval is over: the next failure is logged, with the repeats
        await until(lambda: len(lines()) == 2)
        second = lines()[1]
        assert second.getMessage() == first.getMessage()
        repeats = field(second, "suppressed")
        assert repeats >= 12  # every failure between the two lines, none of them logged

        consumer.refusals = consumer.attempts  # the ACL is granted: the next commit goes through
        await until(lambda: bool(consumer.committed))
    finally:
        loop.stop()
        await task
    assert consumer.committed == [{TP: 1}]  # the offsets kept through the failures
    recovered = lines()[2:]
    assert [r.getMessage() for r in recovered] == ["commit succeeded again"]
    assert recovered[0].levelno == logging.INFO
    assert field(recovered[0], "failures") == consumer.attempts - 1 and field(recovered[0], "seconds") == 60.0
    assert failures("test") - before == consumer.attempts - 1  # every failure counted


def test_a_different_failure_is_logged_at_once_and_a_success_starts_afresh(
    lines: Callable[[], list[logging.LogRecord]],
):
    clock = Clock()
    log = CommitFailureLog("other", clock=clock, every_s=60)
    before = failures("other")
    log.failed("commit failed, kept for the next one", UnknownError())
    log.failed("commit failed, kept for the next one", UnknownError())
    clock.now = 1.0
    log.failed("commit failed, kept for the next one", KafkaTimeoutError())  # another error
    log.failed("commit failed, delivered again", KafkaTimeoutError())  # given up now, not kept
    log.failed("commit failed, delivered again", KafkaTimeoutError())
    assert [(r.getMessage(), field(r, "error")) for r in lines()] == [
        ("commit failed, kept for the next one", "UnknownError: [Error -1] UnknownError"),
        ("commit failed, kept for the next one", "KafkaTimeoutError: KafkaTimeoutError"),
        ("commit failed, delivered again", "KafkaTimeoutError: KafkaTimeoutError"),
    ]
    clock.now = 2.0
    log.succeeded()
    log.succeeded()  # said once
    (recovered,) = lines()[3:]
    assert [field(recovered, name) for name in ("failures", "seconds", "suppressed")] == [5, 2.0, 1]
    log.failed("commit failed, delivered again", KafkaTimeoutError())  # a new episode: logged at once
    assert len(lines()) == 5 and field(lines()[4], "suppressed") is None
    assert failures("other") - before == 6


async def test_commits_that_never_failed_log_nothing(lines: Callable[[], list[logging.LogRecord]]):
    consumer = FakeConsumer([good(1), good(2)])
    loop = make_loop(consumer, FakeProducer(), handle_nothing)
    task = asyncio.create_task(loop.run())
    try:
        await until(lambda: bool(consumer.committed))
    finally:
        loop.stop()
        await task
    assert lines() == []
