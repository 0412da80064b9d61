"""The write-back rig's fixture, shared by the sender's test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete

from services.router.writeback.models import WritebackDelivery, WritebackTarget
from tests.integration.router_sla.test_writeback_sending import Rig


@pytest.fixture
async def rig(sessions) -> AsyncIterator[Rig]:
    made = Rig(sessions)
    try:
        yield made
    finally:
        async with sessions() as session, session.begin():
            await session.execute(
                delete(WritebackDelivery).where(WritebackDelivery.target_id.in_(made.target_ids))
            )
            await session.execute(delete(WritebackTarget).where(WritebackTarget.id.in_(made.target_ids)))
