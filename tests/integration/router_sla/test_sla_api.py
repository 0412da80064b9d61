"""SLA policy/calendar admin API: versions with author and diff, validation, ETag concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from services.router.slas import service
from services.router.slas.endpoints import router
from services.router.slas.service import load_config
from shared.auth import Role
from tests.integration.router_sla.helpers import api_client, new_id


async def client_for(sessions) -> httpx.AsyncClient:
    return await api_client(sessions, router, Role.EDITOR, "sla editor")


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


async def test_a_writer_that_committed_after_our_read_makes_our_save_fail(sessions):
    """Both admins read version 1 and passed If-Match; the second save must not land as version 3."""
    cal = f"cal-{new_id()[:8]}"

    def stored(holidays: list[str]) -> dict[str, Any]:
        # What the API stores (validated, with its name): the database is shared with later tests,
        # whose router would refuse to start on a calendar it cannot read.
        raw = {"timezone": "Europe/Berlin", "weekly_hours": {"mon-fri": ["09:00-17:00"]}}
        raw["holidays"] = holidays
        return service.validate_document("calendar", cal, raw, set()).model_dump(mode="json")

    async with sessions() as session, session.begin():
        await service.save(session, "calendar", cal, stored([]), "setup", previous=None)
    async with sessions() as slow:
        await slow.begin()
        seen = await service.latest(slow, "calendar", cal)
        async with sessions() as fast, fast.begin():
            await service.save(fast, "calendar", cal, stored(["2026-12-24"]), "fast", previous=seen)
        with pytest.raises(IntegrityError):
            await service.save(slow, "calendar", cal, stored(["2026-12-31"]), "slow", previous=seen)
        await slow.rollback()
    async with sessions() as session:
        rows = await service.history(session, "calendar", cal)
    assert [(r.version, r.author) for r in rows] == [(1, "setup"), (2, "fast")]


async def test_concurrent_puts_with_one_etag_save_one_version(sessions):
    pol_calendar = f"cal-{new_id()[:8]}"
    document = {"timezone": "UTC", "weekly_hours": {"mon-sun": ["00:00-24:00"]}}
    async with await client_for(sessions) as client:
        created = await client.put(f"/v1/sla/calendars/{pol_calendar}", json={"document": document})
        assert created.status_code == 201
        responses = await asyncio.gather(
            *(
                client.put(
                    f"/v1/sla/calendars/{pol_calendar}",
                    json={"document": {**document, "holidays": [f"2026-12-{day}"]}},
                    headers={"If-Match": created.headers["etag"]},
                )
                for day in (24, 25, 26, 31)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 412, 412, 412], [r.text for r in responses]
        history = (await client.get(f"/v1/sla/calendars/{pol_calendar}/versions")).json()
    assert [v["version"] for v in history] == [1, 2]
