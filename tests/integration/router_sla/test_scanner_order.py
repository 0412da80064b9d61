"""The escalation scanner is bound to no partition: it must not publish a ticket's next event while
another router's change of that ticket is committed but not yet published."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from services.router.escalation.scanner import EscalationScanner
from services.router.routing.handler import HandlerOptions, RoutingHandler
from shared.db.models import OutboxMessage
from shared.events import EventType, Priority, TicketStatus
from tests.integration.router_sla.helpers import Clock, config, event, new_id, route, sla_rig, utc


class DiesBeforePublishing:
    """Router A's producer: its process dies between the commit and the publish."""

    def __init__(self, real) -> None:
        self.real = real

    async def partitions_for(self, topic):
        return await self.real.partitions_for(topic)

    def create_batch(self):
        return self.real.create_batch()

    async def send_batch(self, *args, **kwargs):
        raise ConnectionError("router A died between commit and publish")


async def unpublished(sessions, key: str) -> list[int]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.key == key))).all()
    return [orjson.loads(row.value)["payload"]["state"]["revision"] for row in rows]


async def test_a_due_ticket_waits_for_another_routers_unpublished_change(sessions, settings_kwargs):
    cfg = config()
    start = utc(2026, 6, 8, 7, 0)  # first-response warning at 08:30 UTC (office hours, Berlin)
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])  # revision 1, published
        at = utc(2026, 6, 8, 7, 40)
        router_a = RoutingHandler(
            sessions,
            DiesBeforePublishing(rig.producer),
            rig.topic,
            lambda: route,
            Clock(at),
            HandlerOptions(sla=lambda: cfg),
        )
        router_a.outbox.dirty = False
        with pytest.raises(ConnectionError):
            await router_a(
                [event(external_id, at, TicketStatus.OPEN, EventType.TICKET_UPDATED, priority=Priority.P2)]
            )
        assert await unpublished(sessions, key) == [2]

        rig.clock.now = utc(2026, 6, 8, 9, 0)  # router B's scanner: the warning is due
        scanner_b = EscalationScanner(sessions, rig.producer, rig.topic, lambda: cfg, rig.clock)
        scanner_b.outbox.dirty = False  # B ran fine: nothing of its own left over
        assert await scanner_b.scan_once() == 0  # revision 3 would have gone out before 2
        assert scanner_b.outbox.dirty
        # Its next scan relays the leftover first, then fires.
        assert await scanner_b.scan_once() > 0
        assert await unpublished(sessions, key) == []
