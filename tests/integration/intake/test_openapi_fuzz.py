"""Schemathesis against the intake's own OpenAPI schema: no 5xx, no response that breaks the schema.

Schemathesis runs the ASGI app (and its lifespan: real broker, real database) on its own event loop
thread, so this test is synchronous; tests/fuzzing.py drives each operation's strategy.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python import asgi

from services.intake.app import create_app
from shared.auth import Role
from shared.settings import IntakeSettings
from tests.e2e.stack import make_key
from tests.fuzzing import fuzz_operations

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_schema(
    settings_kwargs: dict[str, Any], database_url: str, mode: GenerationMode
) -> None:
    app = create_app(IntakeSettings(database_url=database_url, **settings_kwargs))
    headers = {"Authorization": f"Bearer {asyncio.run(make_key(database_url, Role.ADMIN))}"}
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert {op.path for op in operations} >= {"/v1/webhooks/{name}", "/v1/sources", "/v1/tickets"}
        fuzz_operations(operations, headers, mode, max_examples=30)
    finally:
        asgi.shutdown_lifespans()  # before the session broker goes away
