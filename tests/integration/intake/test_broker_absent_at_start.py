"""Intake starts without the broker: it needs only its database, so tickets sent before the broker
is up are accepted into the outbox (202 "queued") and published once it answers."""

from __future__ import annotations

import asyncio

from shared.kafka.embedded import EmbeddedBroker, free_port
from tests.conftest import unique_topics
from tests.integration.intake.helpers import read_topic, running_intake


async def test_intake_starts_and_accepts_while_the_broker_is_away(database_url: str) -> None:
    broker = EmbeddedBroker(port=free_port())  # its port: nothing listens there yet
    topics = unique_topics()
    try:
        async with asyncio.timeout(20):  # a start that waits for the broker would give up after minutes
            intake_context = running_intake(
                database_url=database_url,
                kafka_bootstrap_servers=broker.bootstrap,
                topic_partitions=3,
                intake_publish_timeout_s=0.2,
                intake_outbox_poll_s=0.2,
                **topics,
            )
            intake = await intake_context.__aenter__()
        try:
            sent = await intake.client.post(
                "/v1/tickets", headers=intake.intake, json={"external_id": "early", "subject": "before Kafka"}
            )
            assert sent.status_code == 202 and sent.json()["delivery"] == "queued", sent.text
            ready = await intake.client.get("/readyz")
            assert ready.status_code == 200, ready.text  # the database is what it cannot work without
            assert "broker" in ready.text

            broker.start()
            events = await read_topic(
                broker.bootstrap, topics["topic_ticket_events"], expected=1, timeout_s=90
            )
            assert [event.ticket_key for event in events] == ["api:early"]
            later = await intake.client.post(
                "/v1/tickets", headers=intake.intake, json={"external_id": "later", "subject": "with Kafka"}
            )
            assert later.status_code == 202 and later.json()["delivery"] == "published", later.text
        finally:
            await intake_context.__aexit__(None, None, None)
    finally:
        broker.stop()
