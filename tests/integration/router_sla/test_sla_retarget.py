"""A stored policy that no longer validates is left out of the routers' configuration, not deleted:
the clocks of its open tickets are kept (consumed time, targets, timers) until it is saved again.

Real handler, ``load_config`` and scanner on the real databases, a fake clock; office hours Mon-Fri
09-17 Berlin. The test runs in 2028, after the other SLA tests' tickets (a scan fires every due
timer in the shared database), and solves its ticket and deletes its policy and calendar at the end.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket, RoutingDecision
from services.router.sla import BusinessCalendar
from services.router.slas.models import SlaConfigVersion
from services.router.slas.service import load_config
from services.router.slas.tracking import SlaConfig
from shared.events import EventType, TicketStatus
from tests.integration.router_sla.helpers import OFFICE, config, event, new_id, sla_rig, utc

MONDAY_9 = utc(2028, 6, 5, 7, 0)  # 09:00 Berlin (CEST)
# Never applies: the database is shared, a policy stored here must select none of the others' tickets.
NEVER = {"field": "customer_tier", "op": "equals", "value": "no tier has this name"}


async def ticket(sessions: async_sessionmaker[AsyncSession], key: str) -> RouterTicket:
    async with sessions() as session:
        row = await session.get(RouterTicket, key)
        assert row is not None
        return row


async def store(
    sessions: async_sessionmaker[AsyncSession],
    kind: str,
    name: str,
    document: dict[str, Any],
    *,
    deleted: bool = False,
) -> None:
    """A version written as an earlier release did, without today's checks."""
    async with sessions() as session, session.begin():
        version = (
            await session.scalar(
                select(SlaConfigVersion.version)
                .where(SlaConfigVersion.kind == kind, SlaConfigVersion.name == name)
                .order_by(SlaConfigVersion.version.desc())
                .limit(1)
            )
            or 0
        )
        session.add(
            SlaConfigVersion(
                kind=kind, name=name, version=version + 1, document=document, deleted=deleted, author="t"
            )
        )


async def test_load_config_names_the_stored_policies_it_leaves_out(sessions):
    invalid, deleted = f"retarget-{new_id()[:8]}", f"retarget-{new_id()[:8]}"
    two_years = {"targets": {"P1": {"resolution": 2 * 525_600}}, "applies_when": NEVER}
    await store(sessions, "policy", invalid, {"name": invalid, **two_years})
    await store(sessions, "policy", deleted, {"name": deleted, **two_years})
    await store(sessions, "policy", deleted, {"name": deleted, **two_years}, deleted=True)
    try:
        async with sessions() as session:
            cfg = await load_config(session)
        assert invalid in cfg.left_out and cfg.policy_named(invalid) is None
        assert deleted not in cfg.left_out  # really deleted: its clocks are re-selected, as before
        assert not {p.name for p in cfg.policies} & cfg.left_out
    finally:
        await store(sessions, "policy", invalid, {"name": invalid, **two_years}, deleted=True)


async def test_a_scan_keeps_the_clock_of_a_ticket_whose_policy_is_left_out(sessions, settings_kwargs):
    suffix = new_id()[:8]
    policy, calendar = f"retarget-{suffix}", f"retarget-cal-{suffix}"
    office = BusinessCalendar.model_validate({**OFFICE.model_dump(), "name": calendar})
    cfg = config(name=policy, calendar=calendar)
    # The routers ran the policy as valid; then it was left out (stored under looser checks).
    async with sla_rig(
        sessions, settings_kwargs, SlaConfig(cfg.policies, {calendar: office}), MONDAY_9
    ) as rig:
        key = await rig.create(MONDAY_9)
        before = await ticket(sessions, key)
        assert before.sla["resolution_due"] == "2028-06-05T15:00:00Z"  # 8 h: Monday 17:00 Berlin
        assert before.sla_next_due_at == utc(2028, 6, 5, 8, 30)  # first-response warning, 10:30

        document = {**cfg.policies[0].model_dump(mode="json"), "applies_when": NEVER}
        document["targets"] = {**document["targets"], "P1": {"resolution": 2 * 525_600}}  # 2 years
        await store(sessions, "calendar", calendar, office.model_dump(mode="json"))
        await store(sessions, "policy", policy, document)
        try:
            async with sessions() as session:
                rig.cfg = await load_config(session)
            assert policy in rig.cfg.left_out and calendar in rig.cfg.calendars

            rig.clock.now = utc(2028, 6, 5, 8, 31)  # past the first-response warning
            await rig.scanner().scan_once()
            after = await ticket(sessions, key)
            assert after.sla_clock is not None and after.sla_clock["clock"]["policy"] == policy
            assert after.sla["policy"] == policy
            assert after.sla["resolution_due"] == "2028-06-05T15:00:00Z"  # unchanged
            assert after.sla_next_due_at == utc(2028, 6, 5, 9, 0)  # the first-response deadline
            async with sessions() as session:
                kinds = (
                    await session.scalars(
                        select(RoutingDecision.kind)
                        .where(RoutingDecision.ticket_key == key)
                        .order_by(RoutingDecision.id)
                    )
                ).all()
            assert kinds[-1] == EventType.SLA_WARNING.value

            # Its events still move the clock on its own targets: solved, the timers stop.
            ext = key.removeprefix("api:")
            await rig.handler(
                [event(ext, rig.clock.now, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)]
            )
            solved = await ticket(sessions, key)
            assert solved.sla_clock is not None and solved.sla_next_due_at is None
        finally:
            await store(sessions, "policy", policy, document, deleted=True)
            await store(sessions, "calendar", calendar, office.model_dump(mode="json"), deleted=True)
