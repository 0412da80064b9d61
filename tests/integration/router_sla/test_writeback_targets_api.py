"""Write-back targets API: secrets write-only, If-Match on update, one winner among concurrent edits."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.orm.exc import StaleDataError

from services.router.writeback.endpoints import router
from services.router.writeback.models import WritebackTarget
from shared.auth import Role
from tests.integration.router_sla.helpers import api_client, new_id


async def client_for(sessions) -> httpx.AsyncClient:
    return await api_client(sessions, router, Role.ADMIN, "writeback admin")


def target(name: str, **changes: object) -> dict[str, object]:
    return {
        "name": name,
        "source": "zendesk",
        "url": "https://helpdesk.example.com/hooks/routing",
        "secret": "s3cret-s3cret-s3cret",
        **changes,
    }


async def test_update_needs_the_current_etag_and_never_returns_the_secret(sessions):
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        created = await client.post("/v1/writeback/targets", json=target(name))
        assert created.status_code == 201 and created.headers["etag"] == '"1"'
        assert "secret" not in created.json()
        url = f"/v1/writeback/targets/{created.json()['id']}"
        missing = await client.put(url, json=target(name, enabled=False))
        assert missing.status_code == 428
        assert missing.headers["content-type"] == "application/problem+json"
        updated = await client.put(url, json=target(name, enabled=False), headers={"If-Match": '"1"'})
        assert updated.status_code == 200 and updated.headers["etag"] == '"2"'
        assert updated.json()["enabled"] is False and updated.json()["revision"] == 2
        stale = await client.put(url, json=target(name), headers={"If-Match": '"1"'})
        assert stale.status_code == 412
        assert (await client.get(url)).json()["enabled"] is False
        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url)).status_code == 404
        assert (await client.delete(url)).status_code == 404


async def test_concurrent_updates_with_one_etag_have_one_winner(sessions):
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        created = await client.post("/v1/writeback/targets", json=target(name))
        url = f"/v1/writeback/targets/{created.json()['id']}"
        responses = await asyncio.gather(
            *(
                client.put(url, json=target(name, source=f"source-{i}"), headers={"If-Match": '"1"'})
                for i in range(4)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 412, 412, 412], [r.text for r in responses]
        final = (await client.get(url)).json()
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert final["revision"] == 2 and final["source"] == winner["source"]


async def test_an_update_based_on_a_stale_read_matches_no_row(sessions):
    """Both admins read revision 1; the later flush must fail instead of overwriting the first."""
    async with sessions() as session, session.begin():
        row = WritebackTarget(**target(f"target-{new_id()[:8]}"))
        session.add(row)
    async with sessions() as slow:
        await slow.begin()
        seen = await slow.get(WritebackTarget, row.id)
        assert seen is not None and seen.revision == 1
        async with sessions() as fast, fast.begin():
            first = await fast.get(WritebackTarget, row.id)
            assert first is not None
            first.source = "fast"
        seen.source = "slow"
        with pytest.raises(StaleDataError):
            await slow.flush()
        await slow.rollback()
    async with sessions() as session:
        final = await session.get(WritebackTarget, row.id)
    assert final is not None and (final.source, final.revision) == ("fast", 2)
