"""SLA policy/calendar admin API: versions with author and diff, validation, ETag concurrency."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.router.slas.endpoints import router
from services.router.slas.service import load_config
from shared.auth import KeyCache, Role, create_api_key
from shared.http.problems import install_problem_handlers
from tests.integration.router_sla.helpers import new_id


async def client_for(sessions) -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.state.sessions = sessions
    app.state.keys = KeyCache(sessions)
    async with sessions() as session, session.begin():
        _, key = await create_api_key(session, "sla editor", Role.EDITOR)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_policy_lifecycle_with_validation_and_etags(sessions):
    cal, pol = f"cal-{new_id()[:8]}", f"pol-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        bad = await client.put(
            f"/v1/sla/calendars/{cal}",
            json={"document": {"timezone": "Mars/Olympus", "weekly_hours": {"mon-fri": "09:00-17:00"}}},
        )
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["errors"][0]["field"] == "/document/timezone"
        ok = await client.put(
            f"/v1/sla/calendars/{cal}",
            json={
                "document": {
                    "timezone": "Europe/Berlin",
                    "weekly_hours": {"mon-fri": "09:00-17:00"},
                    "holidays": ["2026-12-25"],
                }
            },
        )
        assert ok.status_code == 201 and ok.headers["etag"] == '"1"'

        unknown_cal = await client.put(f"/v1/sla/policies/{pol}", json={"document": {"calendar": "nope"}})
        assert (
            unknown_cal.status_code == 422
            and unknown_cal.json()["errors"][0]["field"] == "/document/calendar"
        )
        bad_when = await client.put(
            f"/v1/sla/policies/{pol}",
            json={
                "document": {"calendar": cal, "applies_when": {"field": "nosuch", "op": "equals", "value": 1}}
            },
        )
        assert bad_when.status_code == 422
        assert bad_when.json()["errors"][0]["field"].startswith("/document/applies_when")

        doc = {
            "calendar": cal,
            "targets": {"P1": {"resolution": 240}},
            "applies_when": {"field": "customer_tier", "op": "equals", "value": "gold"},
        }
        created = await client.put(f"/v1/sla/policies/{pol}", json={"document": doc, "comment": "first"})
        assert created.status_code == 201
        doc["targets"] = {"P1": {"resolution": 120}}
        assert (await client.put(f"/v1/sla/policies/{pol}", json={"document": doc})).status_code == 428
        stale = await client.put(
            f"/v1/sla/policies/{pol}", json={"document": doc}, headers={"If-Match": '"7"'}
        )
        assert stale.status_code == 412
        updated = await client.put(
            f"/v1/sla/policies/{pol}", json={"document": doc}, headers={"If-Match": '"1"'}
        )
        assert updated.status_code == 200 and updated.headers["etag"] == '"2"'

        history = (await client.get(f"/v1/sla/policies/{pol}/versions")).json()
        assert [v["version"] for v in history] == [1, 2]
        assert history[1]["author"] == "api-key:sla editor" and "targets" in history[1]["diff"]
        in_use = await client.delete(f"/v1/sla/calendars/{cal}", headers={"If-Match": '"1"'})
        assert in_use.status_code == 409

    async with sessions() as session:
        config = await load_config(session)
    assert config.policy_named(pol) is not None and cal in config.calendars
