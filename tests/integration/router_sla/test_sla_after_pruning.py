"""A resolved ticket cut down to a stub by retention (services/router/retention.py) and reopened
later runs on its SLA clock exactly as if it had never been pruned: same deadlines, no breach fired
on the spot, new timer ids (the next cycle). Routed again as a new ticket, it had started its clock
at its original creation, weeks back, and been breached the moment it came back (review finding)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket, RoutingDecision
from services.router.retention import prune_resolved_tickets
from shared.events import EventType, TicketSnapshot, TicketStatus, ticket_event
from shared.kafka.consumer import ConsumedEvent
from tests.integration.router_sla.helpers import SlaRig, config, new_id, sla_rig, utc

START = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin
REOPENED = utc(2026, 6, 22, 7, 0)  # two weeks later


def consumed(external_id: str, at: Any, status: TicketStatus, kind: EventType) -> ConsumedEvent:
    snapshot = TicketSnapshot(
        external_id=external_id, subject="printer on fire", status=status, created_at=START, updated_at=at
    )
    return ConsumedEvent(ticket_event(kind, "api", snapshot, occurred_at=at), "tickets", 0, 0)


async def reopen_after(
    rig: SlaRig, sessions: async_sessionmaker[AsyncSession], prune: bool
) -> tuple[dict[str, Any], list[str]]:
    """Create, solve, (prune,) reopen two weeks later and scan a minute after: the ticket's SLA
    state and its decisions since the reopening."""
    external_id = new_id()
    rig.clock.now = START
    await rig.handler([consumed(external_id, START, TicketStatus.NEW, EventType.TICKET_CREATED)])
    solved = START + timedelta(minutes=20)
    rig.clock.now = solved
    await rig.handler([consumed(external_id, solved, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
    if prune:
        later = solved + timedelta(days=10)
        assert await prune_resolved_tickets(sessions, timedelta(days=7), now=later) >= 1
    rig.clock.now = REOPENED
    await rig.handler([consumed(external_id, REOPENED, TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)])
    rig.clock.now = REOPENED + timedelta(minutes=1)
    await rig.scanner().scan_all_due()
    key = f"api:{external_id}"
    async with sessions() as session:
        row = await session.get(RouterTicket, key)
        assert row is not None
        kinds = await session.scalars(
            select(RoutingDecision.kind)
            .where(RoutingDecision.ticket_key == key, RoutingDecision.decided_at >= REOPENED)
            .order_by(RoutingDecision.id)
        )
        return row.sla, list(kinds)


async def test_a_reopened_stub_keeps_its_clock(
    sessions: async_sessionmaker[AsyncSession], settings_kwargs: dict[str, Any]
) -> None:
    cfg = config(on_breach=[{"action": "raise_priority"}])
    async with sla_rig(sessions, settings_kwargs, cfg, START) as rig:
        kept_sla, kept_kinds = await reopen_after(rig, sessions, prune=False)
        pruned_sla, pruned_kinds = await reopen_after(rig, sessions, prune=True)

    assert pruned_sla == kept_sla
    assert pruned_kinds == kept_kinds == [EventType.TICKET_REOPENED.value]
