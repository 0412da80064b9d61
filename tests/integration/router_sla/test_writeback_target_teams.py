"""A connector target's ``groups`` name our teams: a target may map only teams that can take
tickets, and a team a target maps can be neither deleted nor deactivated (as one the rules name),
or the helpdesk's moves would be read back as a team that is gone."""

from __future__ import annotations

import httpx
from sqlalchemy import delete

from services.router.teams.endpoints import router as teams_router
from services.router.writeback.endpoints import router as writeback_router
from services.router.writeback.groups import GroupDirectory
from services.router.writeback.models import WritebackTarget
from shared.auth import Role
from shared.events import utc_now
from shared.http.problems import PROBLEM_JSON
from tests.integration.router_sla.helpers import api_client, new_id

TOKEN = "zd-api-token-0123456789"
ANY = {"If-Match": "*"}


def zendesk(name: str, source: str, **options: object) -> dict[str, object]:
    return {
        "name": name,
        "source": source,
        "connector": "zendesk",
        "url": "https://acme.zendesk.com",
        "secret": TOKEN,
        "options": {"username": "bot@acme.com", **options},
    }


async def add_team(client: httpx.AsyncClient, active: bool = True) -> str:
    name = f"grp-{new_id()[:8]}"
    created = await client.post("/v1/teams", json={"name": name, "active": active})
    assert created.status_code == 201, created.text
    return name


async def test_a_target_maps_only_known_active_teams(sessions):
    async with (
        await api_client(sessions, teams_router, Role.EDITOR, "teams editor") as teams,
        await api_client(sessions, writeback_router, Role.ADMIN, "writeback admin") as targets,
    ):
        known, asleep = await add_team(teams), await add_team(teams, active=False)
        missing = f"gone-{new_id()[:8]}"
        source = f"zd-{new_id()[:8]}"
        body = zendesk(
            f"t-{new_id()[:8]}",
            source,
            groups={known: 1, missing: 2, asleep: 3},
            group_names={missing: "Gone"},
        )
        refused = await targets.post("/v1/writeback/targets", json=body)
        assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM_JSON
        errors = {e["field"]: e["message"] for e in refused.json()["errors"]}
        assert errors == {
            f"/options/groups/{missing}": f"unknown team {missing!r}",
            f"/options/group_names/{missing}": f"unknown team {missing!r}",
            f"/options/groups/{asleep}": f"inactive team {asleep!r}",
        }, errors
        body["options"] = {"username": "bot@acme.com", "groups": {known: 1}}
        created = await targets.post("/v1/writeback/targets", json=body)
        assert created.status_code == 201, created.text
        # A replacement is checked too.
        url = f"/v1/writeback/targets/{created.json()['id']}"
        body["options"] = {"username": "bot@acme.com", "groups": {known: 1, missing: 2}}
        replaced = await targets.put(url, json=body, headers=ANY)
        assert replaced.status_code == 422, replaced.text
        assert [e["field"] for e in replaced.json()["errors"]] == [f"/options/groups/{missing}"]
        assert (await targets.delete(url, headers=ANY)).status_code == 204


async def test_a_team_a_target_maps_cannot_be_deleted_or_deactivated(sessions):
    async with (
        await api_client(sessions, teams_router, Role.EDITOR, "teams editor") as teams,
        await api_client(sessions, writeback_router, Role.ADMIN, "writeback admin") as targets,
    ):
        team, other = await add_team(teams), await add_team(teams)
        name = f"maps-{new_id()[:8]}"
        body = zendesk(name, f"zd-{new_id()[:8]}", group_names={team: "Billing"})
        created = await targets.post("/v1/writeback/targets", json=body)
        assert created.status_code == 201, created.text
        for refused in (
            await teams.delete(f"/v1/teams/{team}", headers=ANY),
            await teams.patch(f"/v1/teams/{team}", json={"active": False}, headers=ANY),
            await teams.put(f"/v1/teams/{team}", json={"active": False}, headers=ANY),
        ):
            assert refused.status_code == 409 and refused.headers["content-type"] == PROBLEM_JSON
            assert f"write-back targets {name!r}" in refused.json()["detail"], refused.text
        assert (await teams.get(f"/v1/teams/{team}")).json()["active"] is True
        # Other changes of the team are not held up.
        assert (await teams.patch(f"/v1/teams/{team}", json={"capacity": 7}, headers=ANY)).status_code == 200
        # Once the target maps another team, it can go.
        body["options"] = {"username": "bot@acme.com", "groups": {other: 9}}
        url = f"/v1/writeback/targets/{created.json()['id']}"
        assert (await targets.put(url, json=body, headers=ANY)).status_code == 200
        assert (await teams.delete(f"/v1/teams/{team}", headers=ANY)).status_code == 204
        assert (await targets.delete(url, headers=ANY)).status_code == 204
        assert (await teams.delete(f"/v1/teams/{other}", headers=ANY)).status_code == 204


async def test_a_target_stored_mapping_a_missing_team_still_loads_and_can_be_changed(sessions):
    """Saved before the check: it is listed, its groups read back, and a change that keeps its
    mapping (disabling it, a new token) is not refused for it; a mapping added is checked."""
    name, source, missing = f"old-{new_id()[:8]}", f"zd-{new_id()[:8]}", f"gone-{new_id()[:8]}"
    now = utc_now()
    body = zendesk(name, source, groups={missing: 360001})
    async with sessions() as session, session.begin():
        row = WritebackTarget(**body, enabled=True, event_kinds=[], created_at=now, updated_at=now)
        session.add(row)
        await session.flush()
        target_id = row.id
    try:
        directory = GroupDirectory(sessions)
        await directory.refresh()
        assert directory.team_of(source, "360001") == missing
        async with await api_client(sessions, writeback_router, Role.ADMIN, "writeback admin") as targets:
            listed = await targets.get("/v1/writeback/targets")
            assert listed.status_code == 200 and name in {t["name"] for t in listed.json()}
            url = f"/v1/writeback/targets/{target_id}"
            kept = await targets.put(url, json={**body, "enabled": False}, headers=ANY)
            assert kept.status_code == 200, kept.text
            body["options"] = {"username": "bot@acme.com", "groups": {missing: 360002}}
            moved = await targets.put(url, json=body, headers=ANY)
            assert moved.status_code == 422
            assert [e["field"] for e in moved.json()["errors"]] == [f"/options/groups/{missing}"]
    finally:
        async with sessions() as session, session.begin():
            await session.execute(delete(WritebackTarget).where(WritebackTarget.id == target_id))
