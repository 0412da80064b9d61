"""Teams CRUD over HTTP: validation with field pointers, ETags, references from the rules, audit."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import delete

from services.router.models import RouterTicket
from shared.events import utc_now
from tests.integration.router_api.helpers import Router, rule


async def test_team_crud_with_etags_and_audit(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    name = f"billing-{uuid.uuid4().hex[:8]}"
    body = {
        "name": name,
        "description": "Invoices",
        "capacity": 12,
        "skills": ["billing"],
        "languages": ["en", "de"],
        "timezone": "Europe/Berlin",
        "calendar": "berlin-office",
    }
    created = await c.post("/v1/teams", json=body, headers=editor)
    assert created.status_code == 201, created.text
    found = re.fullmatch(rf'W/"team-{name}-1\.([0-9a-f]{{16}})"', created.headers["ETag"])
    assert found, created.headers["ETag"]
    gen = found.group(1)  # drawn when the team was created
    assert created.json()["timezone"] == "Europe/Berlin"
    assert (await c.post("/v1/teams", json=body, headers=editor)).status_code == 409

    listed = await c.get("/v1/teams", headers=router_api.viewer)
    assert name in {t["name"] for t in listed.json()}
    one = await c.get(f"/v1/teams/{name}", headers=router_api.viewer)
    assert one.json()["capacity"] == 12 and one.headers["ETag"] == f'W/"team-{name}-1.{gen}"'

    # Mutations need If-Match: missing -> 428, stale -> 412 naming the current ETag.
    missing = await c.patch(f"/v1/teams/{name}", json={"capacity": 20}, headers=editor)
    assert missing.status_code == 428
    assert missing.headers["content-type"] == "application/problem+json"
    patched = await c.patch(
        f"/v1/teams/{name}", json={"capacity": 20}, headers={**editor, "If-Match": f'W/"team-{name}-1.{gen}"'}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["capacity"] == 20 and patched.headers["ETag"] == f'W/"team-{name}-2.{gen}"'
    stale = await c.patch(
        f"/v1/teams/{name}", json={"capacity": 30}, headers={**editor, "If-Match": f'W/"team-{name}-1.{gen}"'}
    )
    assert stale.status_code == 412
    assert f'W/"team-{name}-2.{gen}"' in stale.json()["detail"]

    replaced = await c.put(
        f"/v1/teams/{name}",
        json={"description": "All money", "capacity": 5},
        headers={**editor, "If-Match": f'W/"team-{name}-2.{gen}"'},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["skills"] == [] and replaced.json()["timezone"] == "UTC"

    deleted = await c.delete(f"/v1/teams/{name}", headers={**editor, "If-Match": "*"})
    assert deleted.status_code == 204 and deleted.headers["X-Outcome"] == "deleted"
    assert (await c.get(f"/v1/teams/{name}", headers=router_api.viewer)).status_code == 404

    audit = await c.get("/v1/audit", params={"entity": "team", "entity_id": name}, headers=router_api.viewer)
    actions = [e["action"] for e in audit.json()]
    assert actions == ["team.delete", "team.update", "team.update", "team.create"]
    assert audit.json()[0]["actor"] == "test editor"
    assert audit.json()[2]["detail"]["changes"]["capacity"] == {"old": 12, "new": 20}


async def test_if_match_holds_when_any_listed_etag_is_current(router_api: Router) -> None:
    """RFC 9110 13.1.1: If-Match lists ETags; the precondition holds when any of them is current,
    also when only a later one is. A malformed header is a 412 problem naming the current ETag,
    never a 500; several If-Match field lines are one list (RFC 9110 5.3)."""
    c, editor = router_api.client, router_api.editor
    name = await router_api.add_team("listed")
    first = (await c.get(f"/v1/teams/{name}", headers=router_api.viewer)).headers["ETag"]
    gen = re.fullmatch(rf'W/"team-{name}-1\.([0-9a-f]{{16}})"', first)
    assert gen, first
    other = "0" * 16 if gen.group(1) != "0" * 16 else "1" * 16  # a deleted team's generation

    def at(revision: int, generation: str = gen.group(1)) -> str:
        return f'W/"team-{name}-{revision}.{generation}"'

    listed = await c.patch(
        f"/v1/teams/{name}",
        json={"capacity": 7},
        headers={**editor, "If-Match": f"{at(9)}, {at(1, other)}, {at(1)}"},
    )
    assert listed.status_code == 200, listed.text
    assert listed.headers["ETag"] == at(2)
    stale = await c.patch(
        f"/v1/teams/{name}", json={"capacity": 8}, headers={**editor, "If-Match": f"{at(1)}, {at(2, other)}"}
    )
    assert stale.status_code == 412 and stale.headers["ETag"] == at(2)
    for malformed in (
        at(2)[:-1],
        f"team-{name}-2.{gen.group(1)}",
        f"*, {at(2)}",
        f"{at(2)} {at(2)}",
        '"',
        ",",
    ):
        refused = await c.patch(
            f"/v1/teams/{name}", json={"capacity": 8}, headers={**editor, "If-Match": malformed}
        )
        assert refused.status_code == 412, (malformed, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["ETag"] == at(2)
        assert at(2) in refused.json()["detail"]
    # Several If-Match field lines are one list: the second line counts too.
    lines = [*editor.items(), ("If-Match", at(1)), ("If-Match", at(2))]
    combined = await c.patch(f"/v1/teams/{name}", json={"capacity": 9}, headers=lines)
    assert combined.status_code == 200, combined.text
    assert combined.headers["ETag"] == at(3)
    missing = await c.patch(f"/v1/teams/{name}", json={"capacity": 10}, headers=editor)
    assert missing.status_code == 428 and missing.headers["ETag"] == at(3)


async def test_validation_errors_name_the_field(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    bad = await c.post(
        "/v1/teams",
        json={"name": "ok-name", "capacity": -1, "languages": ["english"], "timezone": "Mars/Base"},
        headers=editor,
    )
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"/capacity", "/languages", "/timezone"} <= fields
    name = await router_api.add_team()
    bad_patch = await c.patch(
        f"/v1/teams/{name}", json={"skills": [""], "capacity": None}, headers={**editor, "If-Match": "*"}
    )
    assert bad_patch.status_code == 422
    assert {e["field"] for e in bad_patch.json()["errors"]} == {"/capacity"}
    bad_name = await c.post("/v1/teams", json={"name": "has space"}, headers=editor)
    assert bad_name.status_code == 422 and bad_name.json()["errors"][0]["field"] == "/name"
    for reserved in ("triage", "other"):  # the metrics' label values for no team and beyond the cap
        taken = await c.post("/v1/teams", json={"name": reserved}, headers=editor)
        assert taken.status_code == 422 and [e["field"] for e in taken.json()["errors"]] == ["/name"]


async def test_rules_must_name_known_active_teams(router_api: Router) -> None:
    team = await router_api.add_team()
    unknown = f"ghost-{uuid.uuid4().hex[:6]}"
    response = await router_api.put_rules(
        {
            "rules": [
                rule("ok", team, "a"),
                rule("ghost", unknown, "b"),
                {"id": "pool", "name": "Pool", "actions": {"assign_pool": {"teams": [team, unknown]}}},
            ],
            "default_team": unknown,
        }
    )
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert set(errors) == {
        "/default_team",
        "/rules/1/actions/assign_team",
        "/rules/2/actions/assign_pool/teams/1",
    }
    assert "rule 'ghost'" in errors["/rules/1/actions/assign_team"] and unknown in errors["/default_team"]


async def test_team_used_by_live_rules_cannot_go(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    team, spare = await router_api.add_team(), await router_api.add_team()
    saved = await router_api.put_rules(
        {"rules": [rule("uses-team", team, "x"), rule("also", team, "y"), rule("spare", spare, "z")]}
    )
    assert saved.status_code == 200, saved.text
    refused = await c.delete(f"/v1/teams/{team}", headers={**editor, "If-Match": "*"})
    assert refused.status_code == 409
    assert "also" in refused.json()["detail"] and "uses-team" in refused.json()["detail"]
    deactivate = await c.patch(
        f"/v1/teams/{team}", json={"active": False}, headers={**editor, "If-Match": "*"}
    )
    assert deactivate.status_code == 409
    # Once no rule names it, it can go.
    assert (await router_api.put_rules({"rules": [rule("spare", spare, "z")]})).status_code == 200
    assert (await c.delete(f"/v1/teams/{team}", headers={**editor, "If-Match": "*"})).status_code == 204


async def test_team_an_sla_policy_reassigns_to_cannot_go(router_api: Router) -> None:
    """As with the rules: the scanner would otherwise escalate tickets to a team that is gone."""
    c, editor = router_api.client, router_api.editor
    team, other = await router_api.add_team("esc"), await router_api.add_team("esc")
    policy = f"reassigns-{uuid.uuid4().hex[:8]}"
    document = {
        # Matches no ticket: the database (and its live policies) is shared with later tests.
        "applies_when": {"field": "customer_tier", "op": "equals", "value": "no tier has this name"},
        "on_breach": [{"action": "reassign_to", "team": other}, {"action": "reassign_to", "team": team}],
    }
    saved = await c.put(f"/v1/sla/policies/{policy}", json={"document": document}, headers=editor)
    assert saved.status_code == 201, saved.text
    always = {**editor, "If-Match": "*"}
    deactivate = await c.patch(f"/v1/teams/{team}", json={"active": False}, headers=always)
    assert deactivate.status_code == 409, deactivate.text
    assert deactivate.headers["content-type"] == "application/problem+json"
    assert policy in deactivate.json()["detail"] and "reassign_to" in deactivate.json()["detail"]
    refused = await c.delete(f"/v1/teams/{team}", headers=always)
    assert refused.status_code == 409 and policy in refused.json()["detail"]
    assert (await c.get(f"/v1/teams/{team}", headers=editor)).json()["active"] is True
    # Once the policy no longer names it, it can go.
    gone = await c.delete(f"/v1/sla/policies/{policy}", headers={**editor, "If-Match": saved.headers["ETag"]})
    assert gone.status_code == 204
    assert (await c.delete(f"/v1/teams/{team}", headers=always)).status_code == 204
    assert (await c.delete(f"/v1/teams/{other}", headers=always)).status_code == 204


async def test_roles_and_keys(router_api: Router) -> None:
    c = router_api.client
    assert (await c.get("/v1/teams")).status_code == 401
    assert (await c.get("/v1/teams", headers={"Authorization": "Bearer tr_admin_nope"})).status_code == 401
    forbidden = await c.post("/v1/teams", json={"name": "viewer-made"}, headers=router_api.viewer)
    assert forbidden.status_code == 403 and forbidden.headers["content-type"] == "application/problem+json"
    put = await c.put("/v1/rules", json={"rules": []}, headers={**router_api.viewer, "If-Match": "*"})
    assert put.status_code == 403
    assert (await c.get("/v1/audit", headers=router_api.viewer)).status_code == 200
    admin = await c.post("/v1/teams", json={"name": f"adm-{uuid.uuid4().hex[:6]}"}, headers=router_api.admin)
    assert admin.status_code == 201


async def test_etag_of_a_deleted_team_does_not_match_its_successor(router_api: Router) -> None:
    """Revisions restart at 1 for a team created again under a deleted one's name: an If-Match
    written against the old team must not change (or delete) the new one."""
    c, editor = router_api.client, router_api.editor
    name = f"reborn-{uuid.uuid4().hex[:8]}"
    old = await c.post("/v1/teams", json={"name": name, "capacity": 3}, headers=editor)
    assert old.status_code == 201, old.text
    old_etag = old.headers["ETag"]
    deleted = await c.delete(f"/v1/teams/{name}", headers={**editor, "If-Match": old_etag})
    assert deleted.status_code == 204 and deleted.headers["X-Outcome"] == "deleted"
    new = await c.post("/v1/teams", json={"name": name, "capacity": 40}, headers=editor)
    assert new.status_code == 201, new.text
    assert new.headers["ETag"] != old_etag

    stale = await c.patch(f"/v1/teams/{name}", json={"capacity": 1}, headers={**editor, "If-Match": old_etag})
    assert stale.status_code == 412, stale.text
    assert stale.headers["ETag"] == new.headers["ETag"]
    assert (
        await c.put(f"/v1/teams/{name}", json={}, headers={**editor, "If-Match": old_etag})
    ).status_code == 412
    assert (await c.delete(f"/v1/teams/{name}", headers={**editor, "If-Match": old_etag})).status_code == 412
    kept = await c.get(f"/v1/teams/{name}", headers=router_api.viewer)
    assert kept.json()["capacity"] == 40 and kept.headers["ETag"] == new.headers["ETag"]
    fresh = await c.patch(
        f"/v1/teams/{name}", json={"capacity": 41}, headers={**editor, "If-Match": new.headers["ETag"]}
    )
    assert fresh.status_code == 200, fresh.text


async def test_a_language_with_a_trailing_newline_is_refused(router_api: Router) -> None:
    """``$`` matched before a final newline: "en\\n" was stored, and no ticket in English ever
    matched the team's language."""
    c, editor = router_api.client, router_api.editor
    for languages in (["en\n"], ["de", "pt-BR\n"]):
        bad = await c.post(
            "/v1/teams", json={"name": f"lang-{uuid.uuid4().hex[:8]}", "languages": languages}, headers=editor
        )
        assert bad.status_code == 422, bad.text
        assert bad.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in bad.json()["errors"]] == ["/languages"]
    name = await router_api.add_team(languages=["en"])
    patched = await c.patch(
        f"/v1/teams/{name}", json={"languages": ["en\n"]}, headers={**editor, "If-Match": "*"}
    )
    assert patched.status_code == 422, patched.text


@asynccontextmanager
async def routed_to(router_api: Router, team: str) -> AsyncIterator[None]:
    """A (solved) ticket routed to ``team`` while the block runs: the team is deactivated, not
    deleted."""
    key = f"api:routed-{uuid.uuid4().hex[:8]}"
    ticket = RouterTicket(
        ticket_key=key,
        source="api",
        external_id=key,
        status="solved",
        priority="P3",
        team=team,
        created_at=utc_now(),
    )
    async with router_api.app.state.sessions() as session, session.begin():
        session.add(ticket)
    try:
        yield
    finally:
        async with router_api.app.state.sessions() as session, session.begin():
            await session.execute(delete(RouterTicket).where(RouterTicket.ticket_key == key))


async def test_deleting_a_deactivated_team_again_changes_nothing_and_audits_nothing(
    router_api: Router,
) -> None:
    """A team tickets were routed to is deactivated by DELETE; a second DELETE finds it inactive
    already: 204 unchanged, as for a revoked key, with no second "team.deactivate" in the audit."""
    c, editor = router_api.client, router_api.editor
    team = await router_api.add_team("deact")
    async with routed_to(router_api, team):
        first = await c.delete(f"/v1/teams/{team}", headers={**editor, "If-Match": "*"})
        assert first.status_code == 204 and first.headers["X-Outcome"] == "deactivated"
        shown = await c.get(f"/v1/teams/{team}", headers=router_api.viewer)
        assert shown.json()["active"] is False and shown.json()["revision"] == 2
        again = await c.delete(f"/v1/teams/{team}", headers={**editor, "If-Match": shown.headers["ETag"]})
        assert again.status_code == 204 and again.headers["X-Outcome"] == "unchanged"
    audit = await c.get("/v1/audit", params={"entity": "team", "entity_id": team}, headers=router_api.viewer)
    assert [e["action"] for e in audit.json()] == ["team.deactivate", "team.create"]


async def test_a_team_deletion_audits_what_the_team_was(router_api: Router) -> None:
    """The audit keeps what a deletion removed (as a write-back target's deletion does), and a
    deactivation its change and revision (as team.update does)."""
    c, editor = router_api.client, router_api.editor
    gone = await router_api.add_team("gone", description="Night shift", capacity=7, skills=["vpn"])
    deleted = await c.delete(f"/v1/teams/{gone}", headers={**editor, "If-Match": "*"})
    assert deleted.headers["X-Outcome"] == "deleted"
    kept = await router_api.add_team("kept")
    async with routed_to(router_api, kept):
        deactivated = await c.delete(f"/v1/teams/{kept}", headers={**editor, "If-Match": "*"})
    assert deactivated.headers["X-Outcome"] == "deactivated"

    params: dict[str, str | int] = {"entity": "team", "limit": 50}
    entries = (await c.get("/v1/audit", params=params, headers=router_api.viewer)).json()

    def last(team: str) -> dict[str, object]:
        return next(e["detail"] for e in entries if e["entity_id"] == team)

    removed = last(gone)
    assert removed["outcome"] == "deleted" and removed["revision"] == 1
    assert removed["team"] == {
        "name": gone,
        "description": "Night shift",
        "active": True,
        "capacity": 7,
        "skills": ["vpn"],
        "languages": [],
        "timezone": "UTC",
        "calendar": None,
        "schedule": None,
    }
    assert last(kept) == {
        "outcome": "deactivated",
        "changes": {"active": {"old": True, "new": False}},
        "revision": 2,
    }


async def test_a_name_differing_only_in_case_is_refused(router_api: Router) -> None:
    """A team "Billing" beside "billing" would be two queues and two sets of gauges: refused, naming the
    team it collides with; the team's own name again is the plain 'already exists'."""
    c, editor = router_api.client, router_api.editor
    name = f"Billing-{uuid.uuid4().hex[:8]}"
    assert (await c.post("/v1/teams", json={"name": name}, headers=editor)).status_code == 201
    for twin in (name.lower(), name.upper()):
        refused = await c.post("/v1/teams", json={"name": twin}, headers=editor)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"] == [
            {"field": "/name", "message": f"differs from team {name!r} only in case"}
        ], refused.text
    again = await c.post("/v1/teams", json={"name": name}, headers=editor)
    assert again.status_code == 409 and again.json()["errors"][0]["message"] == "already exists"
    names = {team["name"] for team in (await c.get("/v1/teams", headers=router_api.viewer)).json()}
    assert name in names and name.lower() not in names and name.upper() not in names
