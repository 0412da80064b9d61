from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.intake.held import ledger_connections
from services.intake.ledger import DeliveryLedger
from tests.integration.intake.helpers import Intake, running_intake


@pytest.fixture
async def intake(settings_kwargs: dict[str, object], database_url: str) -> AsyncIterator[Intake]:
    async with running_intake(
        database_url=database_url, intake_outbox_poll_s=0.2, **settings_kwargs
    ) as running:
        yield running


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[DeliveryLedger]:
    held = ledger_connections(database_url)
    yield DeliveryLedger(held)
    await held.close()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name}-{id(request)}"
