"""Schemathesis against the intake's own OpenAPI schema: no 5xx, no response that breaks the schema.

Schemathesis runs the ASGI app (and its lifespan: real broker, real database) on its own event loop
thread, so this test is synchronous. ``schemathesis.pytest.from_fixture`` does not work with the
installed pytest 9, so the test drives each operation's strategy with Hypothesis directly: the same
generation and checks ``@schema.parametrize()`` would run, bounded and derandomised for CI.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.python import asgi

from services.intake.app import create_app
from shared.auth import Role
from shared.settings import IntakeSettings
from tests.e2e.stack import make_key

pytestmark = pytest.mark.slow

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


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
        for operation in operations:
            inputs = [operation.body, operation.path_parameters, operation.query, operation.headers]
            if mode is GenerationMode.NEGATIVE and not any(len(group) for group in inputs):
                continue  # nothing to make invalid (e.g. /healthz)

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            call()
    finally:
        asgi.shutdown_lifespans()  # before the session broker goes away
