"""Driving schemathesis over a service's operations, shared by the intake and router fuzz tests.

``schemathesis.pytest.from_fixture`` does not work with the installed pytest 9, so each
operation's strategy is driven with Hypothesis directly: the generation and checks
``@schema.parametrize()`` would run, bounded and derandomised for CI.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def fuzz_operations(
    operations: Iterable[Any], headers: dict[str, str], mode: GenerationMode, max_examples: int
) -> None:
    """Call each operation with ``max_examples`` generated cases and run :data:`CHECKS` on the
    answers; the first failing case fails the test."""
    bounded = settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    for operation in operations:
        inputs = [operation.body, operation.path_parameters, operation.query, operation.headers]
        if mode is GenerationMode.NEGATIVE and not any(len(group) for group in inputs):
            continue  # nothing to make invalid (e.g. /healthz)

        @bounded
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:
            # Nothing invalid to generate (e.g. an unconstrained path string): nothing to test.
            assert mode is GenerationMode.NEGATIVE, operation.path
