"""In-process router for the classifier API tests: real app and lifespan, broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.app import create_app
from services.router.classifiers import service
from services.router.classifiers.schemas import LabelKind
from shared.auth import Role
from shared.settings import RouterSettings
from tests.e2e.stack import make_key
from tests.unit.classifiers.helpers import model, synthetic


@dataclass
class Router:
    app: FastAPI
    client: httpx.AsyncClient
    admin: dict[str, str]
    viewer: dict[str, str]


@asynccontextmanager
async def running_router(**settings: Any) -> AsyncIterator[Router]:
    # A group of its own: joining a group another test just left can wait for a rebalance.
    config = RouterSettings(**{"router_group_id": f"router-{uuid.uuid4().hex[:8]}", **settings})
    app = create_app(config)
    admin = {"Authorization": f"Bearer {await make_key(config.database_url, Role.ADMIN)}"}
    viewer = {"Authorization": f"Bearer {await make_key(config.database_url, Role.VIEWER)}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as client:
            yield Router(app, client, admin, viewer)


async def stored(
    sessions: async_sessionmaker[AsyncSession], kind: LabelKind = LabelKind.TEAM, seed: int = 7
) -> int:
    """A trained synthetic model stored as a new, inactive version."""
    texts, _ = synthetic(seed=seed)
    async with sessions() as session, session.begin():
        row = await service.store_model(
            session,
            model(seed),
            name=f"synthetic-{seed}",
            label_kind=kind,
            figures={"threshold": model(seed).threshold},
            trained_on={"file": "synthetic", "rows": len(texts)},
        )
        return row.id
