"""Topic names and their creation at startup."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.settings import CommonSettings

log = logging.getLogger(__name__)


def all_topics(settings: CommonSettings) -> list[str]:
    return [settings.topic_ticket_events, settings.topic_routing_events, settings.topic_dead_letter]


async def ensure_topics(settings: CommonSettings, attempts: int = 30) -> None:
    """Create our topics when missing. Every service calls this; creation races are harmless."""
    last_error: Exception | None = None
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers(), request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in all_topics(settings) if t not in existing]
            if missing:
                new = [
                    NewTopic(t, settings.topic_partitions, settings.topic_replication_factor) for t in missing
                ]
                response = await admin.create_topics(new)
                # The broker answers per topic, and aiokafka raises none of its errors.
                refused = [
                    f"{topic}: {for_code(code).__name__}: {(rest and rest[0]) or for_code(code).description}"
                    for topic, code, *rest in response.topic_errors  # (v1 on: and a message)
                    if code not in (0, TopicAlreadyExistsError.errno)  # created by another service: fine
                ]
                if refused:
                    raise TopicNotCreatedError("; ".join(refused))
                log.info("created topics", extra={"topics": missing})
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
        finally:
            await admin.close()
    if isinstance(last_error, TopicNotCreatedError):
        raise RuntimeError(f"Kafka did not create our topics: {last_error}")
    raise RuntimeError(f"could not reach Kafka to create topics: {last_error}")


class TopicNotCreatedError(KafkaError):
    """The broker refused to create a topic (retried: a cluster may still be gathering its brokers)."""
