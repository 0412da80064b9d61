"""In-process router for admin API tests: the real app and lifespan, broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from services.router.app import create_app
from services.router.rules import RuleSet
from services.router.rulesets.service import live
from services.router.rulesets.store import save_version
from services.ticketctl.dev import seed
from shared.auth import Role
from shared.settings import RouterSettings
from tests.e2e.stack import make_key


@dataclass
class Router:
    app: FastAPI
    client: httpx.AsyncClient
    settings: RouterSettings
    admin: dict[str, str]
    editor: dict[str, str]
    viewer: dict[str, str]

    async def rules_etag(self) -> str:
        response = await self.client.get("/v1/rules", headers=self.viewer)
        assert response.status_code == 200, response.text
        return response.headers["ETag"]

    async def add_team(self, prefix: str = "team", **fields: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        response = await self.client.post("/v1/teams", json={"name": name, **fields}, headers=self.editor)
        assert response.status_code == 201, response.text
        return name

    async def put_rules(self, document: dict[str, Any], **params: str) -> httpx.Response:
        headers = {**self.editor, "If-Match": await self.rules_etag()}
        return await self.client.put("/v1/rules", json=document, headers=headers, params=params)


def rule(rule_id: str, team: str, subject: str | None = None, **extra: Any) -> dict[str, Any]:
    when = {"field": "subject", "op": "contains", "value": subject} if subject else None
    body: dict[str, Any] = {
        "id": rule_id,
        "name": f"Rule {rule_id}",
        "actions": {"assign_team": team},
        **extra,
    }
    if when:
        body["when"] = when
    return body


@asynccontextmanager
async def running_router(**settings: Any) -> AsyncIterator[Router]:
    config = RouterSettings(**settings)
    # The demo teams and rules first, as the e2e stack does: seeding only happens while no team
    # exists, and the e2e tests that share this database rely on the demo rules. Not the demo SLA
    # policy: the shared database's tickets run no clock unless a test saves a policy.
    await seed(config.database_url, sla=False)
    app = create_app(config)
    url = config.database_url
    admin = {"Authorization": f"Bearer {await make_key(url, Role.ADMIN)}"}
    editor = {"Authorization": f"Bearer {await make_key(url, Role.EDITOR)}"}
    viewer = {"Authorization": f"Bearer {await make_key(url, Role.VIEWER)}"}
    async with app.router.lifespan_context(app):
        before = await live_rules(app.state.sessions)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as client:
                yield Router(app, client, config, admin, editor, viewer)
        finally:
            await restore_live_rules(app.state.sessions, before)


async def restore_live_rules(sessions: Any, before: RuleSet) -> None:
    """Tests share one database per session: put back the rule set that was live before them,
    so tests that rely on the demo rules (the walking skeleton) still find them."""
    async with sessions() as session, session.begin():
        if (await live(session)).version != before.version:
            await save_version(session, before.model_copy(update={"version": None}), "tests", "restore")


async def live_rules(sessions: Any) -> RuleSet:
    async with sessions() as session:
        return await live(session)
