"""A policy deleted and created again under the same name: its timers are its own.

Timer ids are ``ticket:target:kind:cycle`` and recorded for good in ``sla_fired_timers``. The
deletion dropped the ticket's clock (no other policy applied), and the re-created policy started a
new one at cycle 0, whose timers had the ids of the ones fired under the old policy: every claim
found its id taken ("fired by another scanner"), so the new policy never warned or breached, and the
ticket's warning and breach flags stayed false.

Real handler and scanner on the real databases, a fake clock; office hours Mon-Fri 09-17 Berlin.
February 2026 is earlier than any other SLA test's dates (a scan fires every due timer in the shared
database), and the ticket is solved at the end.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket, RoutingDecision
from services.router.slas.recheck import recheck_clocks_on
from services.router.slas.tracking import SlaConfig
from shared.events import EventType, TicketStatus
from tests.integration.router_sla.helpers import config, event, new_id, sla_rig, utc

START = utc(2026, 2, 2, 8, 0)  # Monday 09:00 Berlin (CET): P3 first response 2 h, resolution 8 h


async def ticket(sessions: async_sessionmaker[AsyncSession], key: str) -> RouterTicket:
    async with sessions() as session:
        row = await session.get(RouterTicket, key)
        assert row is not None
        return row


async def kinds(sessions: async_sessionmaker[AsyncSession], key: str) -> list[str]:
    async with sessions() as session:
        query = (
            select(RoutingDecision.kind).where(RoutingDecision.ticket_key == key).order_by(RoutingDecision.id)
        )
        return list((await session.scalars(query)).all())


async def test_a_recreated_policy_warns_and_breaches_again(sessions, settings_kwargs):
    async with sla_rig(sessions, settings_kwargs, config(), START) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, START)])
        rig.clock.now = utc(2026, 2, 2, 16, 30)  # 17:30 Berlin: past both deadlines
        assert await rig.scanner().scan_once() == 4  # both targets' warnings and breaches
        row = await ticket(sessions, key)
        assert row.sla["breached"] is True and row.sla["warning_sent"] is True

        # Deleted, no other policy applies: the recheck drops the clock.
        rig.cfg = SlaConfig(calendars=rig.cfg.calendars, version=1)
        async with sessions() as session, session.begin():
            await recheck_clocks_on(session, "policy", "standard", rig.clock.now)
        await rig.scanner().scan_once()
        row = await ticket(sessions, key)
        assert row.sla["policy"] is None and row.sla_next_due_at is None

        # Created again under the same name (the rig's handler has it: its configuration is the
        # first one): it applies from the ticket's next event (the source raised its priority),
        # with a clock from the ticket's creation, past both of its deadlines.
        recreated = config()
        rig.cfg = SlaConfig(recreated.policies, recreated.calendars, version=2)
        rig.clock.now = utc(2026, 2, 3, 8, 0)
        raised = event(external_id, rig.clock.now, TicketStatus.OPEN, EventType.TICKET_UPDATED, priority="P2")
        await rig.handler([raised])
        row = await ticket(sessions, key)
        assert row.sla["policy"] == "standard" and row.sla["breached"] is False
        assert row.sla_next_due_at is not None and row.sla_next_due_at <= rig.clock.now

        before = len(await kinds(sessions, key))
        assert await rig.scanner().scan_once() == 4
        after = (await kinds(sessions, key))[before:]
        assert after.count(EventType.SLA_WARNING.value) == 2
        assert after.count(EventType.SLA_BREACHED.value) == 2
        row = await ticket(sessions, key)
        assert row.sla["breached"] is True and row.sla["warning_sent"] is True

        # And the re-created policy's timers fire once, like any others.
        assert await rig.scanner().scan_once() == 0
        solved = event(external_id, rig.clock.now, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)
        await rig.handler([solved])
        assert (await ticket(sessions, key)).sla_next_due_at is None
