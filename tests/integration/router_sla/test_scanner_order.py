"""The escalation scanner is bound to no partition: it must not publish a ticket's next event while
another router's change of that ticket is committed but not yet published; nor must the batch
handler while another router's escalation of the ticket is."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from sqlalchemy import select

from services.router.escalation.scanner import EscalationScanner
from services.router.models import RouterTicket
from services.router.routing.handler import HandlerOptions, RoutingHandler
from services.router.routing.messages import OUTBOX_OWNER
from shared.db.models import OutboxMessage
from shared.events import EventType, Priority, TicketStatus
from tests.integration.router_sla.helpers import Clock, config, event, new_id, route, sla_rig, utc
from tests.kafka_reading import read_records


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


async def test_a_batch_publishes_another_routers_unpublished_escalation_of_its_ticket_first(
    sessions, settings_kwargs
):
    cfg = config()
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin; first-response warning at 08:30 UTC
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])  # revision 1, published by router B
        # Router A's scanner fires the warning (revision 2) and dies before publishing it.
        rig.clock.now = utc(2026, 6, 8, 8, 31)
        scanner_a = EscalationScanner(
            sessions, DiesBeforePublishing(rig.producer), rig.topic, lambda: cfg, rig.clock
        )
        scanner_a.outbox.dirty = False
        with pytest.raises(ConnectionError):
            await scanner_a.scan_once()
        assert await unpublished(sessions, key) == [2]
        # Router B, owning the ticket's partition, routes the ticket's next event: revision 3.
        rig.clock.now = utc(2026, 6, 8, 8, 32)
        rig.handler.outbox.dirty = False  # B ran fine: nothing of its own left over
        pending = event(external_id, rig.clock.now, TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)
        await rig.handler([pending])
        assert await unpublished(sessions, key) == []  # A's revision went out with B's batch
        records = await read_records(settings_kwargs["kafka_bootstrap_servers"], rig.topic, 3)
        revisions = [
            orjson.loads(record.value)["payload"]["state"]["revision"]
            for record in records
            if record.key == key.encode()
        ]
        assert revisions == [1, 2, 3]


async def test_a_batch_that_waited_for_a_scanners_lock_publishes_what_it_committed_first(
    sessions, settings_kwargs
):
    """The common race, no failure needed: router A's scanner holds the ticket's row while it fires;
    router B's batch waits for the lock, then routes the ticket's next event while A's publish may
    still be on its way. Read in the statement that waited for the lock, A's outbox row would be
    invisible (a statement sees what was committed when it started)."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite serialises whole transactions)")
    cfg = config()
    start = utc(2026, 6, 8, 7, 0)
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])  # revision 1, published
        rig.handler.outbox.dirty = False
        at = utc(2026, 6, 8, 8, 32)
        rig.clock.now = at
        pending = event(external_id, at, TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)
        # Router A's escalation: revision 1's event as published, made revision 2 with an id of its own.
        first = [
            r
            for r in await read_records(settings_kwargs["kafka_bootstrap_servers"], rig.topic, 1)
            if r.key == key.encode()
        ]
        warning = orjson.loads(first[0].value)
        warning["event_id"], warning["payload"]["state"]["revision"] = str(uuid.uuid4()), 2
        async with sessions() as session, session.begin():  # router A's scanner, firing
            row = await session.get(RouterTicket, key, with_for_update=True)
            assert row is not None
            row.revision = 2
            session.add(
                OutboxMessage(owner=OUTBOX_OWNER, topic=rig.topic, key=key, value=orjson.dumps(warning))
            )
            batch = asyncio.create_task(rig.handler([pending]))
            await asyncio.sleep(0.3)
            assert not batch.done()  # router B waits for the ticket's row
        await asyncio.wait_for(batch, timeout=10)
        assert await unpublished(sessions, key) == []  # B published A's row, then its own
        records = await read_records(settings_kwargs["kafka_bootstrap_servers"], rig.topic, 3)
        mine = [orjson.loads(record.value) for record in records if record.key == key.encode()]
        assert [m["payload"]["state"]["revision"] for m in mine] == [1, 2, 3]
