from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.intake.helpers import Intake, running_intake


@pytest.fixture
async def intake(settings_kwargs: dict[str, object], database_url: str) -> AsyncIterator[Intake]:
    async with running_intake(
        database_url=database_url, intake_outbox_poll_s=0.2, **settings_kwargs
    ) as running:
        yield running
