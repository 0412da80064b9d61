"""Schemathesis against the router's OpenAPI schema (admin API operations): no 5xx, and every
response matches the declared status codes, content types, headers and schemas.

Same approach as the intake's fuzz test: schemathesis runs the ASGI app with its lifespan (real
broker and database) on its own loop thread; each operation's strategy is driven by Hypothesis,
bounded and derandomised, with an admin key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python import asgi
from sqlalchemy import delete, func, select

from services.router.app import create_app
from services.router.slas.models import SlaConfigVersion
from services.router.writeback.models import WritebackTarget
from services.ticketctl.dev import seed
from shared.auth import Role
from shared.db.engine import create_engine, session_factory
from shared.settings import RouterSettings
from tests.e2e.stack import make_key
from tests.fuzzing import fuzz_operations
from tests.integration.router_api.helpers import live_rules, restore_live_rules

pytestmark = pytest.mark.slow
T = TypeVar("T")

ADMIN_PREFIXES = (
    "/v1/teams",
    "/v1/rules",
    "/v1/routing",
    "/v1/audit",
    "/v1/tickets",
    "/v1/api-keys",
    "/v1/sla",
    "/v1/writeback",
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_admin_api_conforms_to_its_schema(
    settings_kwargs: dict[str, Any], database_url: str, mode: GenerationMode
) -> None:
    app = create_app(RouterSettings(database_url=database_url, **settings_kwargs))
    headers = {"Authorization": f"Bearer {asyncio.run(make_key(database_url, Role.ADMIN))}"}
    asyncio.run(seed(database_url, sla=False))  # see running_router
    before = asyncio.run(on_database(database_url, live_rules))
    last_ids = asyncio.run(on_database(database_url, last_fuzzable_ids))
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [
            op
            for op in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]
            if op.path.startswith(ADMIN_PREFIXES)
        ]
        assert {op.path for op in operations} >= {
            "/v1/teams",
            "/v1/teams/{name}",
            "/v1/rules",
            "/v1/rules/{rule_id}",
            "/v1/rules/versions",
            "/v1/routing/simulate",
            "/v1/routing/replay",
            "/v1/audit",
            "/v1/api-keys",
            "/v1/api-keys/{key_id}",
            "/v1/sla/{plural}/{name}",
            "/v1/writeback/targets/{target_id}",
        }
        fuzz_operations(operations, headers, mode, max_examples=25)
    finally:
        asgi.shutdown_lifespans()
        asyncio.run(on_database(database_url, lambda sessions: restore_live_rules(sessions, before)))
        asyncio.run(on_database(database_url, lambda sessions: drop_rows_after(sessions, last_ids)))


# Rows the fuzzing creates that would act on later tests in this session's database: SLA policies
# would apply to their tickets, write-back targets would be sent their events.
FUZZED_IDS = (SlaConfigVersion.id, WritebackTarget.id)


async def last_fuzzable_ids(sessions: Any) -> list[int]:
    async with sessions() as session:
        return [int(await session.scalar(select(func.max(column))) or 0) for column in FUZZED_IDS]


async def drop_rows_after(sessions: Any, last_ids: list[int]) -> None:
    async with sessions() as session, session.begin():
        for column, last in zip(FUZZED_IDS, last_ids, strict=True):
            await session.execute(delete(column.class_).where(column > last))


async def on_database(database_url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    engine = create_engine(database_url)
    try:
        return await work(session_factory(engine))
    finally:
        await engine.dispose()
