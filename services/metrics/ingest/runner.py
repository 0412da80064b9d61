"""The consumer that feeds a :class:`BacklogIngest`, wired the same way wherever one runs."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from services.metrics.ingest.consumer import BacklogIngest
from shared.kafka.runner import ConsumerRunner
from shared.kafka.throttle import FetchThrottle
from shared.settings import MetricsSettings


def ingest_runner(
    settings: MetricsSettings, producer: AIOKafkaProducer, ingest: BacklogIngest
) -> ConsumerRunner:
    """Both topics in the metrics group, range-assigned (tickets-p and routing-p on one member:
    one shard per p); shards restored and checkpointed as partitions move, and restored offsets
    checked against the partitions' ends (see ``BacklogIngest``)."""
    runner = ConsumerRunner(
        settings,
        producer,
        group_id=settings.metrics_group_id,
        topics=[settings.topic_ticket_events, settings.topic_routing_events],
        handler=ingest,
        on_assign=ingest.on_assign,
        on_revoke=ingest.on_revoke,
        assignor=RangePartitionAssignor,
        # Read only to count tickets received: fewer, fuller fetches (shared/kafka/throttle.py).
        throttle=FetchThrottle(
            [settings.topic_ticket_events], settings.metrics_ticket_events_fetch_interval_ms / 1000
        ),
    )
    # Through the runner: a consumer replaced after a stuck rebalance is the one to ask.
    ingest.end_offsets = lambda partitions: runner.consumer.end_offsets(partitions)
    ingest.partition_view = lambda tp: partition_view(runner, tp)
    ingest.assignment = lambda: runner.consumer.assignment()
    return runner


def partition_view(runner: ConsumerRunner, tp: TopicPartition) -> tuple[int | None, int | None]:
    """The high watermark of ``tp``'s last fetch and its lag after the last batch the loop handled
    (None while a batch is in hand: its records may be fetched and not applied yet); (None, None)
    for a partition not assigned (the consumer asserts on it)."""
    consumer, loop = runner.consumer, runner.loop
    if tp not in consumer.assignment():
        return None, None
    return consumer.highwater(tp), None if loop.in_batch else loop.lag.get(tp)
