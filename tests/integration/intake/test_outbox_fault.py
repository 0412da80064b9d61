"""A hung broker (SIGSTOP): every ticket is accepted, then published exactly once, in order per ticket."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

from shared.kafka.embedded import EmbeddedBroker
from tests.conftest import unique_topics
from tests.integration.intake.helpers import read_topic, running_intake

pytestmark = [pytest.mark.fault, pytest.mark.slow]

TICKETS = 250
UPDATES = 4  # per ticket: 1,000 requests in all


async def test_hung_broker_loses_nothing_and_keeps_ticket_order(database_url: str) -> None:
    broker = EmbeddedBroker()  # our own: pausing the shared session broker would stall other tests
    broker.start()
    try:
        async with running_intake(
            database_url=database_url,
            kafka_bootstrap_servers=broker.bootstrap,
            topic_partitions=3,
            intake_publish_timeout_s=0.2,
            intake_outbox_poll_s=0.2,
            **unique_topics(),
        ) as intake:
            warm = await intake.client.post(
                "/v1/tickets",
                headers=intake.intake,
                json={"external_id": "warm-up", "subject": "before the pause"},
            )
            assert warm.status_code == 202 and warm.json()["delivery"] == "published"

            broker.pause()
            paused_at = time.monotonic()
            accepted: list[dict[str, str]] = []
            gate = asyncio.Semaphore(20)

            async def one_ticket(t: int) -> None:
                for u in range(UPDATES):  # each update after the previous one was answered
                    async with gate:
                        response = await intake.client.post(
                            "/v1/tickets",
                            headers=intake.intake,
                            json={
                                "external_id": f"t{t}",
                                "subject": f"ticket {t}",
                                "status": "open" if u else "new",
                                "custom_fields": {"seq": u},
                            },
                        )
                    assert response.status_code == 202, response.text
                    accepted.append(response.json())

            await asyncio.gather(*(one_ticket(t) for t in range(TICKETS)))
            ready = await intake.client.get("/readyz")
            # Still ready (it accepts into its outbox), degraded: a load balancer keeps sending.
            assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
            assert ready.json()["checks"]["outbox"].startswith("degraded")
            assert ready.json()["checks"]["broker"] != "ok"
            broker.resume()
            paused_for = time.monotonic() - paused_at

            assert len(accepted) == TICKETS * UPDATES
            queued = sum(1 for a in accepted if a["delivery"] == "queued")
            assert queued > len(accepted) * 0.9, (queued, paused_for)

            events = await read_topic(
                broker.bootstrap,
                intake.settings.topic_ticket_events,
                expected=len(accepted) + 1,
                idle_s=2.0,
                timeout_s=90,
            )
            ids = [str(e.event_id) for e in events]
            assert len(ids) == len(set(ids)), "an event was published twice"
            assert set(ids) == {a["event_id"] for a in accepted} | {warm.json()["event_id"]}
            seqs: dict[str, list[int]] = defaultdict(list)
            for event in events:
                if event.ticket_key != "api:warm-up":
                    seqs[event.ticket_key].append(event.ticket().custom_fields["seq"])
            assert all(order == list(range(UPDATES)) for order in seqs.values()), seqs
            assert len(seqs) == TICKETS

            deadline = time.monotonic() + 10
            while (await intake.client.get("/readyz")).json()["status"] != "ready":
                assert time.monotonic() < deadline, "still degraded after the outbox drained"
                await asyncio.sleep(0.2)
            metrics = (await intake.client.get("/metrics")).text
            assert "intake_outbox_depth 0.0" in metrics
    finally:
        broker.stop()
