"""In-process intake for tests: the real app and lifespan, the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from services.intake.app import create_app
from shared.auth import Role
from shared.events import EventEnvelope
from shared.settings import IntakeSettings
from tests.e2e.stack import make_key
from tests.kafka_reading import read_records


@dataclass
class Intake:
    app: FastAPI
    client: httpx.AsyncClient
    settings: IntakeSettings
    admin: dict[str, str]
    intake: dict[str, str]

    async def add_source(self, name: str, type_: str, secret: str, **options: Any) -> httpx.Response:
        response = await self.client.post(
            "/v1/sources",
            json={"name": name, "type": type_, "secret": secret, "options": options},
            headers=self.admin,
        )
        assert response.status_code == 201, response.text
        return response


@asynccontextmanager
async def running_intake(**settings: Any) -> AsyncIterator[Intake]:
    config = IntakeSettings(**settings)
    app = create_app(config)
    admin = {"Authorization": f"Bearer {await make_key(config.database_url, Role.ADMIN)}"}
    intake = {"Authorization": f"Bearer {await make_key(config.database_url, Role.INTAKE)}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake", timeout=30) as client:
            yield Intake(app, client, config, admin, intake)


async def read_topic(
    bootstrap: str, topic: str, expected: int, idle_s: float = 1.0, timeout_s: float = 30.0
) -> list[EventEnvelope]:
    """Everything on ``topic``: waits for ``expected`` messages, then ``idle_s`` more for extras."""
    records = await read_records(bootstrap, topic, expected, idle_s=idle_s, timeout_s=timeout_s)
    return [EventEnvelope.from_bytes(record.value) for record in records]
