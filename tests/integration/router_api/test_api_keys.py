"""API keys over HTTP: created by admins and shown once, listed without secrets, revoked (and then
refused), every change audited; the last active admin key cannot be revoked."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import pytest

from services.router.apikeys import service
from services.router.apikeys.schemas import ApiKeyCreate
from services.router.errors import Conflict
from shared.auth import Role
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.db.scratch import drop_database
from tests.conftest import POSTGRES_URL, _create_postgres_database, database_params
from tests.integration.router_api.helpers import Router


async def test_an_admin_creates_lists_and_revokes_a_key(
    router_api: Router, caplog: pytest.LogCaptureFixture
) -> None:
    c, admin = router_api.client, router_api.admin
    caplog.set_level(logging.DEBUG)
    name = f"grafana-{uuid.uuid4().hex[:8]}"
    created = await c.post("/v1/api-keys", json={"name": name, "role": "viewer"}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    key_id, plain = body["id"], body["key"]
    assert plain.startswith("tr_viewer_") and body["role"] == "viewer" and body["revoked_at"] is None
    assert created.headers["Location"] == f"/v1/api-keys/{key_id}"
    assert created.headers["Cache-Control"] == "no-store"
    own = {"Authorization": f"Bearer {plain}"}
    assert (await c.get("/v1/teams", headers=own)).status_code == 200  # it works at once
    assert (await c.get("/v1/api-keys", headers=own)).status_code == 403  # as a viewer only

    listed = await c.get("/v1/api-keys", params={"active": "true"}, headers=admin)
    assert listed.status_code == 200
    mine = [k for k in listed.json() if k["id"] == key_id]
    assert mine == [{k: body[k] for k in ("id", "name", "role", "created_at", "revoked_at")}]
    assert plain not in listed.text and "hash" not in listed.text
    one = await c.get(f"/v1/api-keys/{key_id}", headers=admin)
    assert one.json()["name"] == name and "key" not in one.json()

    revoked = await c.delete(f"/v1/api-keys/{key_id}", headers=admin)
    assert (revoked.status_code, revoked.headers["X-Outcome"]) == (204, "revoked")
    again = await c.delete(f"/v1/api-keys/{key_id}", headers=admin)
    assert (again.status_code, again.headers["X-Outcome"]) == (204, "unchanged")
    assert (await c.get(f"/v1/api-keys/{key_id}", headers=admin)).json()["revoked_at"] is not None
    assert key_id in {k["id"] for k in (await c.get("/v1/api-keys?active=false", headers=admin)).json()}
    # Other replicas cache a key lookup for 5 s; the one that revoked it refuses it at once.
    assert (await c.get("/v1/teams", headers=own)).status_code == 401

    audit = await c.get("/v1/audit", params={"entity": "api_key", "entity_id": key_id}, headers=admin)
    assert [(e["action"], e["detail"]) for e in audit.json()] == [
        ("revoke", {"name": name, "role": "viewer"}),
        ("create", {"name": name, "role": "viewer"}),
    ]
    assert plain not in caplog.text  # nor in any log line


async def test_bad_requests_get_problems_naming_the_field(router_api: Router) -> None:
    c, admin = router_api.client, router_api.admin
    bad = await c.post("/v1/api-keys", json={"name": " ", "role": "root"}, headers=admin)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in bad.json()["errors"]} == {"/name", "/role"}
    unknown = await c.delete(f"/v1/api-keys/{uuid.uuid4()}", headers=admin)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert (await c.get("/v1/api-keys/not-a-uuid", headers=admin)).status_code == 422
    only_editor = await c.post("/v1/api-keys", json={"name": "x"}, headers=router_api.editor)
    assert only_editor.status_code == 403
    assert (await c.get("/v1/api-keys")).status_code == 401


async def test_the_last_active_admin_key_cannot_be_revoked(tmp_path: Path) -> None:
    """On a database of its own: the shared one holds other tests' admin keys."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    await asyncio.to_thread(upgrade, url)  # it runs an event loop of its own
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            first, _ = await service.create_key(session, ApiKeyCreate(name="first", role=Role.ADMIN), "t")
            second, _ = await service.create_key(session, ApiKeyCreate(name="second", role=Role.ADMIN), "t")
            viewer, _ = await service.create_key(session, ApiKeyCreate(name="viewer"), "t")
        async with sessions() as session, session.begin():
            assert await service.revoke_key(session, first.id, "t")
        async with sessions() as session, session.begin():
            with pytest.raises(Conflict, match="last active admin key") as refused:
                await service.revoke_key(session, second.id, "t")
            # The key's id is the URL's (DELETE /v1/api-keys/{key_id}), named as every path
            # parameter is: "/key_id" pointed into a request body the DELETE has none of.
            assert [e["field"] for e in refused.value.errors] == ["/path/key_id"]
            assert await service.revoke_key(session, viewer.id, "t")  # other roles do not count
        async with sessions() as session:
            assert [k.name for k in await service.list_keys(session, active=True)] == ["second"]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database", database_params())
async def test_two_admins_revoking_each_others_key_at_once_leave_one(database: str, tmp_path: Path) -> None:
    """Each revocation counted two active admin keys before either wrote: both succeeded, and no
    admin key was left. On a database of its own, like the test above."""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    else:
        assert POSTGRES_URL
        url = await _create_postgres_database(POSTGRES_URL)
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_factory(engine)

    async def revoke(key_id: str, actor: str) -> bool | str:
        try:
            async with sessions() as session, session.begin():
                return await service.revoke_key(session, key_id, actor)
        except Conflict:
            return "conflict"

    try:
        for round_ in range(5):
            async with sessions() as session, session.begin():
                pair = [
                    (
                        await service.create_key(
                            session, ApiKeyCreate(name=f"{n}{round_}", role=Role.ADMIN), "t"
                        )
                    )[0]
                    for n in "ab"
                ]
                survivors = [k for k in await service.list_keys(session, active=True) if k not in pair]
            for key in survivors:  # the last round's: the pair is what is left
                assert await revoke(key.id, "t") is True
            a, b = pair
            outcomes = await asyncio.gather(revoke(b.id, a.name), revoke(a.id, b.name))
            assert sorted(map(str, outcomes)) == ["True", "conflict"], outcomes
            async with sessions() as session:
                active = await service.list_keys(session, active=True)
            assert len(active) == 1 and active[0].role == Role.ADMIN.value
    finally:
        await engine.dispose()
        if database == "postgres":
            await drop_database(url)
