"""Readiness checks of consumer services."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from shared.kafka.checks import same_partition_counts
from shared.kafka.runner import ConsumerRunner


def runner_knowing(partitions: dict[str, set[int] | None]) -> ConsumerRunner:
    consumer = SimpleNamespace(partitions_for_topic=lambda topic: partitions.get(topic))
    return cast(ConsumerRunner, cast(Any, SimpleNamespace(consumer=consumer)))


async def test_topics_that_differ_in_partitions_fail_readiness_naming_both() -> None:
    topics = ["tickets", "routing"]
    assert (
        await same_partition_counts(runner_knowing({"tickets": {0, 1}, "routing": {0, 1}}), topics)() is None
    )
    # Not known yet (metadata still loading): no verdict.
    assert await same_partition_counts(runner_knowing({"tickets": {0, 1}, "routing": None}), topics)() is None
    # Partitions added to one topic only: a ticket's events and decisions would be in two shards.
    grown = runner_knowing({"tickets": set(range(12)), "routing": set(range(6))})
    reason = await same_partition_counts(grown, topics)()
    assert reason == "topics differ in partitions (tickets 12, routing 6): give them the same count"
