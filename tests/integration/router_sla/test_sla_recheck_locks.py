"""PostgreSQL: a policy edit's recheck and a routing batch lock ticket rows in one order (by key),
so they wait for each other instead of deadlocking.

The edit's rows were once locked in the table's order (an UPDATE scanning it) while a batch locks
its tickets in key order (handler._read). The interleaving is made deterministic with a third
transaction holding a row in the middle; the rows are inserted in reverse key order, the order an
updated table drifts into anyway.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket
from services.router.slas import service as sla_service
from shared.db.dialect import is_postgres
from tests.integration.router_sla.helpers import new_id, utc


async def test_a_policy_edit_and_a_routing_batch_do_not_deadlock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as probe:
        if not is_postgres(probe):
            pytest.skip("SQLite has one database lock, no row locks")
    policy = f"locks-{new_id()[:8]}"
    keys = [f"locks:{policy}:{letter}" for letter in "zyxwvutsrq"]  # inserted high key first
    async with sessions() as session, session.begin():
        await sla_service.save(session, "policy", policy, {"name": policy, "targets": {}}, "t", previous=None)
        session.add_all(
            RouterTicket(
                ticket_key=key,
                source="locks",
                external_id=key,
                status="open",
                priority="P3",
                created_at=utc(2027, 1, 4),
                sla_clock={"clock": {"policy": policy, "calendar": "24x7"}, "fired": []},
            )
            for key in keys
        )
    high, middle, low = keys[0], keys[5], keys[-1]
    holder, admin, batch = sessions(), sessions(), sessions()
    try:
        await holder.begin()
        await holder.execute(select(RouterTicket).where(RouterTicket.ticket_key == middle).with_for_update())

        async def edit_policy() -> None:
            async with admin.begin():
                previous = await sla_service.begin_change(admin, "policy", policy)
                document = {"name": policy, "targets": {"P3": {"resolution": 60}}}
                await sla_service.save(admin, "policy", policy, document, "t", previous=previous)

        async def routing_batch() -> None:
            async with batch.begin():
                query = (
                    select(RouterTicket)
                    .where(RouterTicket.ticket_key.in_([low, high]))
                    .order_by(RouterTicket.ticket_key)
                    .with_for_update()
                )
                await batch.scalars(query)

        edit = asyncio.create_task(edit_policy())
        await asyncio.sleep(0.3)  # the edit waits for the middle row (holding the rows before it)
        route = asyncio.create_task(routing_batch())
        await asyncio.sleep(0.3)  # the batch holds the low key, waits for the high one
        await holder.commit()
        # Locked in the table's order, the edit held the high key and went on to the low one: a
        # cycle, and PostgreSQL aborted one of them after deadlock_timeout.
        await asyncio.wait_for(asyncio.gather(edit, route), timeout=10)
    finally:
        for session in (holder, admin, batch):
            await session.close()
    async with sessions() as session:
        marked = list(
            await session.scalars(
                select(RouterTicket.sla_next_due_at).where(RouterTicket.ticket_key.in_(keys))
            )
        )
    # Every ticket on the policy is marked for a recheck (no rows at all would check nothing).
    assert len(marked) == len(keys) and None not in marked, marked
