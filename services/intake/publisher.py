"""Publishing ticket events without ever losing an acknowledged one.

The fast path waits (bounded) for the broker's acks=all acknowledgement. When the broker is
down or slow past that bound, the event is written to the outbox in the database instead and
the caller still gets its 2xx: the relay publishes it once the broker is back. While anything
waits in the outbox, new events queue behind it too, so per-ticket order is kept.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.outbox import outbox_depth, outbox_row, relay_once
from shared.events import EventEnvelope

log = logging.getLogger(__name__)

OUTBOX_OWNER = "intake"

EVENTS_PUBLISHED = Counter("intake_events_total", "Ticket events accepted, by path", ["path"])
OUTBOX_DEPTH = Gauge("intake_outbox_depth", "Events waiting in the outbox for the broker")


class Delivery(StrEnum):
    PUBLISHED = "published"  # acknowledged by the broker
    QUEUED = "queued"  # stored durably in the outbox; published when the broker is back


class EventPublisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        sessions: async_sessionmaker[AsyncSession],
        topic: str,
        timeout_s: float,
    ) -> None:
        self.producer = producer
        self.sessions = sessions
        self.topic = topic
        self.timeout_s = timeout_s
        self.outbox_pending = 0  # rows we know are waiting; refreshed by the relay

    @property
    def degraded(self) -> bool:
        return self.outbox_pending > 0

    async def publish(self, events: list[EventEnvelope]) -> Delivery:
        """Return only once every event is acknowledged by the broker or stored in the outbox."""
        if not events:
            return Delivery.PUBLISHED
        if not self.degraded:
            try:
                async with asyncio.timeout(self.timeout_s):
                    futures = [
                        await self.producer.send(self.topic, value=e.to_bytes(), key=e.ticket_key.encode())
                        for e in events
                    ]
                    await asyncio.gather(*futures)
                EVENTS_PUBLISHED.labels("broker").inc(len(events))
                return Delivery.PUBLISHED
            except Exception as exc:  # timeout or broker error: fall back to the durable outbox
                log.warning("broker unavailable, parking events in the outbox", extra={"error": repr(exc)})
        await self.park(events)
        return Delivery.QUEUED

    async def park(self, events: list[EventEnvelope]) -> None:
        async with self.sessions() as session, session.begin():
            session.add_all([outbox_row(OUTBOX_OWNER, self.topic, e) for e in events])
        self.outbox_pending += len(events)
        OUTBOX_DEPTH.set(self.outbox_pending)
        EVENTS_PUBLISHED.labels("outbox").inc(len(events))

    async def relay_forever(self, poll_s: float) -> None:
        """Drain the outbox whenever it has rows; runs for the life of the service."""
        while True:
            try:
                self.outbox_pending = await outbox_depth(self.sessions, OUTBOX_OWNER)
                while self.outbox_pending:
                    async with asyncio.timeout(max(self.timeout_s, 10.0)):
                        sent = await relay_once(self.sessions, self.producer, OUTBOX_OWNER)
                    self.outbox_pending = await outbox_depth(self.sessions, OUTBOX_OWNER)
                    OUTBOX_DEPTH.set(self.outbox_pending)
                    if sent:
                        log.info("outbox relayed", extra={"sent": sent, "left": self.outbox_pending})
                OUTBOX_DEPTH.set(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox relay failed, will retry", extra={"error": repr(exc)})
            await asyncio.sleep(poll_s)
