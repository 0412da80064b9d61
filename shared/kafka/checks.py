"""Readiness check for a service whose work is a consumer loop."""

from __future__ import annotations

from shared.http.health import Check
from shared.kafka.runner import ConsumerRunner


def consumer_check(runner: ConsumerRunner) -> Check:
    async def check() -> str | None:
        return None if runner.alive else "consumer loop is not running"

    return check
