"""Team shift schedules over HTTP: accepted, returned, patched, cleared; bad ones name the field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from services.router.assignment import LoadConfig
from services.router.assignment.capacity import MAX_AGENTS
from services.router.load.store import prefetch
from tests.integration.router_api.helpers import Router

SCHEDULE: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "tickets_per_agent": 4,
    "shifts": [
        {"name": "early", "hours": {"mon-fri": "06:00-14:00"}, "agents": 3},
        {"name": "late", "hours": {"mon-fri": ["14:00", "22:00"]}, "agents": 2},
    ],
    "holidays": ["2026-12-25"],
}


async def test_schedule_is_stored_patched_and_cleared(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    name = f"shifts-{uuid.uuid4().hex[:8]}"
    created = await c.post("/v1/teams", json={"name": name, "schedule": SCHEDULE}, headers=editor)
    assert created.status_code == 201, created.text
    stored = created.json()["schedule"]
    assert stored["tickets_per_agent"] == 4 and [s["agents"] for s in stored["shifts"]] == [3, 2]
    assert stored["shifts"][0]["hours"]["fri"] == [{"start": "06:00", "end": "14:00"}]
    assert stored["holidays"] == [{"day": "2026-12-25", "name": None}]

    one = await c.get(f"/v1/teams/{name}", headers=router_api.viewer)
    assert one.json()["schedule"] == stored

    fewer = {**SCHEDULE, "shifts": [{"name": "all day", "hours": {"mon-sun": "08:00-20:00"}, "agents": 1}]}
    patched = await c.patch(
        f"/v1/teams/{name}", json={"schedule": fewer}, headers={**editor, "If-Match": one.headers["ETag"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["schedule"]["shifts"][0]["name"] == "all day"
    cleared = await c.patch(
        f"/v1/teams/{name}", json={"schedule": None}, headers={**editor, "If-Match": patched.headers["ETag"]}
    )
    assert cleared.status_code == 200 and cleared.json()["schedule"] is None
    assert (await c.get(f"/v1/teams/{name}", headers=router_api.viewer)).json()["schedule"] is None


async def test_bad_schedule_is_422_naming_the_field(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    name = f"shifts-{uuid.uuid4().hex[:8]}"
    bad_shift = {**SCHEDULE, "shifts": [{**SCHEDULE["shifts"][0], "agents": -1}]}
    response = await c.post("/v1/teams", json={"name": name, "schedule": bad_shift}, headers=editor)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} == {"/schedule/shifts/0/agents"}

    overlapping = {
        **SCHEDULE,
        "timezone": "Mars/Olympus",
        "shifts": [{"name": "x", "hours": {"mon": ["09:00-12:00", "11:00-13:00"]}, "agents": 1}],
    }
    response = await c.post("/v1/teams", json={"name": name, "schedule": overlapping}, headers=editor)
    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"/schedule/timezone", "/schedule/shifts/0/hours"}, fields

    created = await c.post("/v1/teams", json={"name": name}, headers=editor)
    assert created.status_code == 201 and created.json()["schedule"] is None
    bad_patch = await c.patch(
        f"/v1/teams/{name}",
        json={"schedule": {**SCHEDULE, "tickets_per_agent": 0}},
        headers={**editor, "If-Match": "*"},
    )
    assert bad_patch.status_code == 422, bad_patch.text
    assert {e["field"] for e in bad_patch.json()["errors"]} == {"/schedule/tickets_per_agent"}


async def test_agents_beyond_the_bound_are_refused_and_teams_stay_readable(router_api: Router) -> None:
    """1 followed by 400 zeros was stored, and then no read of the teams (nor the routers' load
    prefetch) could parse the JSON back: 500s for every team."""
    c, editor = router_api.client, router_api.editor
    name = f"shifts-{uuid.uuid4().hex[:8]}"
    shift = {"name": "all", "hours": {"mon-sun": "00:00-24:00"}, "agents": 0}
    template = json.dumps({"name": name, "schedule": {"tickets_per_agent": 1, "shifts": [shift]}})
    for agents in ("1" + "0" * 400, str(MAX_AGENTS + 1)):  # as JSON text: no Python value is 1e400
        body = template.replace('"agents": 0', f'"agents": {agents}')
        headers = {**editor, "Content-Type": "application/json"}
        refused = await c.post("/v1/teams", content=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["/schedule/shifts/0/agents"]
    most = {
        "tickets_per_agent": 1,
        "shifts": [{"name": "all", "hours": {"mon": "09:00-17:00"}, "agents": MAX_AGENTS}],
    }
    created = await c.post("/v1/teams", json={"name": name, "schedule": most}, headers=editor)
    assert created.status_code == 201, created.text
    assert (await c.get("/v1/teams", headers=router_api.viewer)).status_code == 200


async def test_a_schedule_with_more_intervals_than_a_calendar_may_have_is_refused(router_api: Router) -> None:
    """Shifts had no bound on their intervals: a 1 MB schedule of minute-long intervals took 23 s of
    the event loop to accept and then some 40 s of every routing batch of every router to read."""
    c, editor = router_api.client, router_api.editor
    name = f"shifts-{uuid.uuid4().hex[:8]}"
    minutes = [f"{m // 60:02d}:{m % 60:02d}-{m // 60:02d}:{m % 60 + 1:02d}" for m in range(0, 60 * 24, 2)]
    per_day = {"tickets_per_agent": 1, "shifts": [{"name": "x", "hours": {"mon": minutes[:49]}, "agents": 1}]}
    refused = await c.post("/v1/teams", json={"name": name, "schedule": per_day}, headers=editor)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in refused.json()["errors"]] == ["/schedule"]
    assert "48 intervals a day" in refused.json()["errors"][0]["message"]

    # 48 a day is fine for one shift; 100 shifts of 48 every day is 33,600 intervals: too many.
    many = [{"name": f"s{i}", "hours": {"daily": minutes[:48]}, "agents": 1} for i in range(100)]
    created = await c.post(
        "/v1/teams", json={"name": name, "schedule": {**per_day, "shifts": many[:1]}}, headers=editor
    )
    assert created.status_code == 201, created.text
    too_many = await c.patch(
        f"/v1/teams/{name}",
        json={"schedule": {**per_day, "shifts": many}},
        headers={**editor, "If-Match": created.headers["ETag"]},
    )
    assert too_many.status_code == 422, too_many.text
    assert [e["field"] for e in too_many.json()["errors"]] == ["/schedule"]


async def test_a_long_team_and_shift_name_do_not_stop_the_routers(router_api: Router) -> None:
    """Each shift became a business calendar named "<team>/<shift>", at most 200 characters: a
    team of 100 and a shift of 150 were accepted, and then every routing batch of every router
    failed reading the team's capacity (a ValidationError: redelivered, and failing, for good)."""
    c, editor = router_api.client, router_api.editor
    name = f"long-{uuid.uuid4().hex[:8]}-".ljust(100, "x")
    shift = {"name": "s" * 150, "hours": {"daily": "00:00-24:00"}, "agents": 2}
    schedule = {"tickets_per_agent": 3, "shifts": [shift]}
    created = await c.post("/v1/teams", json={"name": name, "schedule": schedule}, headers=editor)
    assert created.status_code == 201, created.text
    async with router_api.app.state.sessions() as session, session.begin():
        book = await prefetch(session, LoadConfig(), None, at=datetime(2026, 6, 1, 12, tzinfo=UTC))
        assert book.capacities[name] == 6
        await session.rollback()
