"""The router baseline: consume ticket events and produce them to an output topic, nothing else.

Same consumer and producer settings and batch size as the router's ConsumerRunner (getmany ->
send every record -> wait for the acks -> commit), so what the router costs on top is its own
work: decoding, rules, the database transaction and the outbox.

    python -m bench.harness.bare_router --bootstrap B --source T --target T2 --group G --count N
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from shared.kafka.producer import make_producer
from shared.kafka.runner import make_consumer
from shared.settings import ConsumerSettings


async def run(args: argparse.Namespace) -> int:
    settings = ConsumerSettings(kafka_bootstrap_servers=args.bootstrap)
    consumer = make_consumer(settings, args.group, args.source)
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    forwarded = 0
    deadline = time.monotonic() + args.timeout
    try:
        while forwarded < args.count and time.monotonic() < deadline:
            batch = await consumer.getmany(
                timeout_ms=settings.consumer_poll_timeout_ms, max_records=settings.consumer_batch_max
            )
            futures = [
                await producer.send(args.target, value=record.value, key=record.key)
                for records in batch.values()
                for record in records
            ]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
                forwarded += len(futures)
    finally:
        await consumer.stop()
        await producer.stop()
    return forwarded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, required=True, help="stop after forwarding this many")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    print(f"forwarded {uvloop.run(run(args))}")


if __name__ == "__main__":
    main()
