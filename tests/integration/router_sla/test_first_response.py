"""An agent's public reply stops the first-response clock however it reaches the router: with the
update that solves the ticket, or after a newer update (webhooks out of order). Missed, the clock
ran on and the policy's warning and breach fired, with their actions, on an answered ticket."""

from __future__ import annotations

from sqlalchemy import select

from services.router.models import RouterTicket, RoutingDecision
from shared.events import Comment, EventType, TicketStatus
from tests.integration.router_sla.helpers import config, event, new_id, sla_rig, utc

REPLY = Comment(body="Please try reconnecting", from_agent=True, public=True)


async def decisions(rig, key: str) -> list[str]:
    async with rig.sessions() as session:
        query = select(RoutingDecision.kind).where(RoutingDecision.ticket_key == key)
        return list((await session.scalars(query.order_by(RoutingDecision.id))).all())


async def test_a_reply_sent_with_solve_keeps_a_reopened_ticket_from_breaching(sessions, settings_kwargs):
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 in Berlin, the office calendar's zone
    async with sla_rig(sessions, settings_kwargs, config(), start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])
        replied = utc(2026, 6, 8, 7, 30)
        await rig.handler(
            [event(external_id, replied, TicketStatus.SOLVED, EventType.TICKET_UPDATED, comment=REPLY)]
        )
        await rig.handler(
            [event(external_id, utc(2026, 6, 8, 9, 0), TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)]
        )
        rig.clock.now = utc(2026, 6, 8, 13, 0)  # past the 2-hour first-response target
        await rig.scanner().scan_once()
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.sla["first_responded_at"] is not None
        assert "sla.breached" not in await decisions(rig, key)


async def test_a_reply_delivered_after_a_newer_update_is_the_first_response(sessions, settings_kwargs):
    start = utc(2026, 6, 8, 7, 0)
    async with sla_rig(sessions, settings_kwargs, config(), start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])
        # 09:20 the agent replies, 09:21 adds a tag; the tag's webhook arrives first.
        tagged = event(
            external_id, utc(2026, 6, 8, 7, 21), TicketStatus.OPEN, EventType.TICKET_UPDATED, tags=["vpn"]
        )
        await rig.handler([tagged])
        reply = event(
            external_id, utc(2026, 6, 8, 7, 20), TicketStatus.OPEN, EventType.TICKET_COMMENTED, comment=REPLY
        )
        await rig.handler([reply])
        rig.clock.now = utc(2026, 6, 8, 10, 0)
        await rig.scanner().scan_once()
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None
            assert row.sla["first_responded_at"] == "2026-06-08T07:20:00Z"
            assert row.snapshot["tags"] == ["vpn"] and "comment" not in row.snapshot  # state as it was
        kinds = await decisions(rig, key)
        assert kinds == ["ticket.routed", "ticket.state_changed"]  # the tag is no state; the reply is
        # A late copy of the same reply, or any later one, changes nothing more.
        await rig.handler([reply])
        assert await decisions(rig, key) == kinds
