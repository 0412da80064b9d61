"""Readiness checks for a service whose work is a consumer loop."""

from __future__ import annotations

from shared.http.health import Check
from shared.kafka.runner import ConsumerRunner


def consumer_check(runner: ConsumerRunner) -> Check:
    async def check() -> str | None:
        return None if runner.alive else "consumer loop is not running"

    return check


def same_partition_counts(runner: ConsumerRunner, topics: list[str]) -> Check:
    """Fails while the topics' partition counts differ, as the consumer's metadata knows them.

    For a consumer that keeps state per partition number across topics (the metrics service:
    tickets-p and routing-p are one shard), partitions added to one topic only would put a
    ticket's events and its decisions in different shards, each with half a ticket.
    """

    async def check() -> str | None:
        counts = {}
        for topic in topics:
            partitions = runner.consumer.partitions_for_topic(topic)
            if partitions:  # None or empty: not known yet
                counts[topic] = len(partitions)
        if len(set(counts.values())) <= 1:
            return None
        listed = ", ".join(f"{topic} {count}" for topic, count in counts.items())
        return f"topics differ in partitions ({listed}): give them the same count"

    return check
