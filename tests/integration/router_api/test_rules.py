"""The rules API: single-rule CRUD, versions with author and diff, rollback, concurrency, audit."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import pytest

from services.router.rules import RuleSet
from services.router.rules.schema import STORED
from services.router.rulesets import service
from services.router.rulesets.store import save_version
from shared.auth import Role, create_api_key, revoke_api_key
from shared.db.engine import create_engine, session_factory
from shared.http.preconditions import Stale
from tests.integration.router_api.helpers import Router, rule


def version_of(etag: str) -> int:
    found = re.fullmatch(r'W/"ruleset-(\d+)"', etag)
    assert found, etag
    return int(found.group(1))


async def test_single_rule_crud_makes_versions(router_api: Router) -> None:
    c, editor, viewer = router_api.client, router_api.editor, router_api.viewer
    a, b = await router_api.add_team("a"), await router_api.add_team("b")
    base = await router_api.put_rules({"rules": [rule("first", a, "one")], "default_team": a}, comment="base")
    assert base.status_code == 200, base.text
    v0 = version_of(base.headers["ETag"])
    assert base.json()["version"] == v0

    def at(version: int) -> dict[str, str]:
        return {**editor, "If-Match": f'W/"ruleset-{version}"'}

    added = await c.post("/v1/rules", json=rule("second", b, "two"), params={"position": 0}, headers=at(v0))
    assert added.status_code == 201, added.text
    assert [r["id"] for r in added.json()["rules"]] == ["second", "first"]
    assert version_of(added.headers["ETag"]) == v0 + 1
    dup = await c.post("/v1/rules", json=rule("second", b, "x"), headers=at(v0 + 1))
    assert dup.status_code == 409

    got = await c.get("/v1/rules/second", headers=viewer)
    assert got.status_code == 200 and got.json()["actions"]["assign_team"] == b
    assert got.headers["ETag"] == f'W/"ruleset-{v0 + 1}"'

    disabled = await c.patch("/v1/rules/second", json={"enabled": False}, headers=at(v0 + 1))
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["rules"][0]["enabled"] is False
    bad = await c.patch(
        "/v1/rules/second", json={"when": {"field": "subject", "op": "gt", "value": 1}}, headers=at(v0 + 2)
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("/when")

    replaced = await c.put("/v1/rules/first", json=rule("first", b, "uno"), headers=at(v0 + 2))
    assert replaced.status_code == 200, replaced.text
    moved = await c.post("/v1/rules/second/move", params={"position": 1}, headers=at(v0 + 3))
    assert [r["id"] for r in moved.json()["rules"]] == ["first", "second"]
    too_far = await c.post("/v1/rules/second/move", params={"position": 5}, headers=at(v0 + 4))
    assert too_far.status_code == 422
    removed = await c.delete("/v1/rules/second", headers=at(v0 + 4))
    assert [r["id"] for r in removed.json()["rules"]] == ["first"]
    assert (await c.get("/v1/rules/second", headers=viewer)).status_code == 404
    assert (await c.delete("/v1/rules/second", headers=at(v0 + 5))).status_code == 404

    versions = (await c.get("/v1/rules/versions", params={"limit": 6}, headers=viewer)).json()
    assert [v["version"] for v in versions] == list(range(v0 + 5, v0 - 1, -1))
    assert all(v["author"] == "test editor" for v in versions)
    assert versions[-1]["comment"] == "base" and "+ rule second" in versions[-2]["diff"]

    doc = await c.get(f"/v1/rules/versions/{v0 + 1}", headers=viewer)
    assert [r["id"] for r in doc.json()["ruleset"]["rules"]] == ["second", "first"]
    diff = await c.get(f"/v1/rules/versions/{v0 + 5}/diff", params={"against": v0}, headers=viewer)
    assert diff.json()["diff"]["changed"] == {"first": ["when", "actions.assign_team"]}
    assert "~ rule first" in diff.json()["text"]

    rolled = await c.post(f"/v1/rules/versions/{v0 + 1}/rollback", headers=at(v0 + 5))
    assert rolled.status_code == 200, rolled.text
    assert version_of(rolled.headers["ETag"]) == v0 + 6
    assert [r["id"] for r in rolled.json()["rules"]] == ["second", "first"]

    audit = (await c.get("/v1/audit", params={"entity": "ruleset", "limit": 7}, headers=viewer)).json()
    assert [e["action"] for e in audit] == [
        "ruleset.rollback",
        "rule.delete",
        "rule.move",
        "rule.update",
        "rule.update",
        "rule.create",
        "ruleset.replace",
    ]
    assert audit[0]["detail"]["rollback_to"] == v0 + 1 and audit[0]["entity_id"] == str(v0 + 6)
    assert "first" in audit[-1]["detail"]["diff"]["added"] and audit[-1]["actor"] == "test editor"


async def test_versions_are_paged_with_a_next_link(router_api: Router) -> None:
    """``/v1/rules/versions`` took ``limit`` and ``before`` but a full page said nothing of the next:
    it now links to it as the audit log and the SLA histories do, other parameters kept."""
    c, viewer = router_api.client, router_api.viewer
    team = await router_api.add_team("paged")
    for n in range(3):
        saved = await router_api.put_rules({"rules": [rule(f"r{n}", team, str(n))], "default_team": team})
        assert saved.status_code == 200, saved.text
    newest = version_of(saved.headers["ETag"])
    first = await c.get("/v1/rules/versions", params={"limit": 2}, headers=viewer)
    assert [v["version"] for v in first.json()] == [newest, newest - 1]
    assert first.headers["link"] == f'</v1/rules/versions?limit=2&before={newest - 1}>; rel="next"'
    second = await c.get(first.headers["link"][1:].split(">")[0], headers=viewer)
    assert [v["version"] for v in second.json()] == [newest - 2, newest - 3]
    assert second.headers["link"].endswith(f'before={newest - 3}>; rel="next"')
    last = await c.get("/v1/rules/versions", params={"limit": 5, "before": 2}, headers=viewer)
    assert [v["version"] for v in last.json()] == [1] and "link" not in last.headers
    spec = (await c.get("/openapi.json")).json()["paths"]["/v1/rules/versions"]["get"]
    assert "Link" in spec["responses"]["200"]["headers"]


async def test_preconditions(router_api: Router) -> None:
    c, editor = router_api.client, router_api.editor
    current = await router_api.rules_etag()
    missing = await c.put("/v1/rules", json={"rules": []}, headers=editor)
    assert missing.status_code == 428 and current in missing.json()["detail"]
    saved = await c.put("/v1/rules", json={"rules": []}, headers={**editor, "If-Match": current})
    assert saved.status_code == 200
    stale = await c.put("/v1/rules", json={"rules": []}, headers={**editor, "If-Match": current})
    assert stale.status_code == 412
    assert saved.headers["ETag"] in stale.json()["detail"] and stale.headers["ETag"] == saved.headers["ETag"]
    foreign = await c.put("/v1/rules", json={"rules": []}, headers={**editor, "If-Match": 'W/"team-x-1"'})
    assert foreign.status_code == 412


async def test_if_match_lists_of_rule_set_etags(router_api: Router) -> None:
    """Rule set ETags carry no generation: a listed one that is current, even after stale ones,
    holds (RFC 9110 13.1.1), as does one on a second If-Match line; a malformed list is a 412."""
    c, editor = router_api.client, router_api.editor
    current = await router_api.rules_etag()
    version = version_of(current)
    listed = await c.put(
        "/v1/rules",
        json={"rules": []},
        headers={**editor, "If-Match": f'W/"ruleset-{version + 5}", W/"team-x-{version}", {current}'},
    )
    assert listed.status_code == 200, listed.text
    now = listed.headers["ETag"]
    assert version_of(now) == version + 1
    malformed = await c.put("/v1/rules", json={"rules": []}, headers={**editor, "If-Match": f"*, {now}"})
    assert malformed.status_code == 412 and malformed.headers["ETag"] == now
    lines = [*editor.items(), ("If-Match", current), ("If-Match", now)]
    combined = await c.put("/v1/rules", json={"rules": []}, headers=lines)
    assert combined.status_code == 200, combined.text
    assert version_of(combined.headers["ETag"]) == version + 2


async def test_weights_and_numbers_json_cannot_store_are_refused(router_api: Router) -> None:
    """A weight of 1e999 / Infinity passed `w > 0` and was stored as null: every later read of the
    live rule set failed (500s, and routers could not start). A huge integer in a condition was
    a 500 at once (OverflowError)."""
    c, editor = router_api.client, router_api.editor
    a, b = await router_api.add_team("w"), await router_api.add_team("w")
    pool = '{"teams": ["%s", "%s"], "strategy": "weighted", "weights": {"%s": %s, "%s": 1}}'
    for weight in ("1e999", "Infinity", "NaN", "1e7"):
        body = '{"rules": [{"id": "w", "name": "w", "actions": {"assign_pool": %s}}]}' % (
            pool % (a, b, a, weight, b)
        )
        headers = {**editor, "If-Match": await router_api.rules_etag(), "Content-Type": "application/json"}
        refused = await c.put("/v1/rules", content=body, headers=headers)
        assert refused.status_code == 422, (weight, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == [f"/rules/0/actions/assign_pool/weights/{a}"]
    huge = rule("huge", a, when={"field": "category_confidence", "op": "gt", "value": 10**400})
    refused = await router_api.put_rules({"rules": [huge]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "/rules/0/when/value"
    assert (await c.get("/v1/rules", headers=router_api.viewer)).status_code == 200
    ok = '{"rules": [{"id": "w", "name": "w", "actions": {"assign_pool": %s}}]}' % (
        pool % (a, b, a, "1e6", b)
    )
    headers = {**editor, "If-Match": await router_api.rules_etag(), "Content-Type": "application/json"}
    saved = await c.put("/v1/rules", content=ok, headers=headers)
    assert saved.status_code == 200, saved.text
    assert (await c.get("/v1/rules", headers=router_api.viewer)).json()["rules"][0]["actions"]["assign_pool"][
        "weights"
    ] == {a: 1e6, b: 1}


async def test_concurrent_saves_create_one_version(router_api: Router) -> None:
    """Both writers saw version N; exactly one creates N+1, the other fails cleanly."""
    team = await router_api.add_team()
    etag = await router_api.rules_etag()
    headers = {**router_api.editor, "If-Match": etag}
    bodies = [{"rules": [rule(f"race-{i}", team, str(i))]} for i in range(4)]
    responses = await asyncio.gather(
        *(router_api.client.put("/v1/rules", json=body, headers=headers) for body in bodies)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1, [r.text for r in responses]
    assert all(code in (409, 412) for code in codes if code != 200)
    assert version_of(await router_api.rules_etag()) == version_of(etag) + 1


async def test_service_level_race_on_the_primary_key(router_api: Router) -> None:
    """Two transactions that both passed the If-Match check: the version primary key decides."""
    sessions = router_api.app.state.sessions
    team = await router_api.add_team()
    live = version_of(await router_api.rules_etag())
    async with sessions() as first, sessions() as second:
        await first.begin()
        await second.begin()
        await service.replace_ruleset(
            first, RuleSet.model_validate({"rules": [rule("w1", team, "a")]}), service.Edit(live, "one")
        )
        await first.commit()
        try:
            await service.replace_ruleset(
                second,
                RuleSet.model_validate({"rules": [rule("w2", team, "b")]}),
                service.Edit(live, "two"),
            )
            await second.commit()
            raised = None
        except Exception as exc:  # Stale on PostgreSQL (and SQLite when it sees the row), or a lock error
            raised = exc
            await second.rollback()
    assert raised is not None
    assert type(raised).__name__ in ("Stale", "OperationalError"), repr(raised)
    assert version_of(await router_api.rules_etag()) == live + 1


async def test_a_concurrent_writer_waits_then_fails_its_if_match(
    router_api: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI once hit: another writer committed between our If-Match check and our insert,
    and one save had to fail (Stale) rather than land as version N+2 on top of the other. The
    configuration lock (services/router/config_lock.py) now rules the race out: the second writer
    waits for the first to commit, then fails its own If-Match check."""
    sessions = router_api.app.state.sessions
    team = await router_api.add_team()
    live = version_of(await router_api.rules_etag())
    checked, other_committed = asyncio.Event(), asyncio.Event()
    check_references = service.check_references

    async def check_then_wait(session: Any, ruleset: RuleSet) -> list[dict[str, Any]]:
        errors = await check_references(session, ruleset)
        if ruleset.rules[0].id == "slow":
            checked.set()
            # The other writer must not get past the lock while we hold it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(other_committed.wait(), 0.5)
            assert not other_committed.is_set()
        return errors

    monkeypatch.setattr(service, "check_references", check_then_wait)

    async def slow_writer() -> None:
        async with sessions() as session, session.begin():
            ruleset = RuleSet.model_validate({"rules": [rule("slow", team, "a")]})
            await service.replace_ruleset(session, ruleset, service.Edit(live, "slow"))

    async def fast_writer() -> None:
        await checked.wait()
        async with sessions() as session, session.begin():
            ruleset = RuleSet.model_validate({"rules": [rule("fast", team, "b")]})
            await service.replace_ruleset(session, ruleset, service.Edit(live, "fast"))
        other_committed.set()

    slow, fast = await asyncio.gather(slow_writer(), fast_writer(), return_exceptions=True)
    assert slow is None, repr(slow)
    assert isinstance(fast, Stale), repr(fast)
    assert version_of(await router_api.rules_etag()) == live + 1
    async with sessions() as session:
        assert [r.id for r in (await service.live(session)).rules] == ["slow"]


async def test_revoked_key_stops_working(router_api: Router) -> None:
    engine = create_engine(router_api.settings.database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            row, plain = await create_api_key(session, "short-lived", Role.VIEWER)
        headers = {"Authorization": f"Bearer {plain}"}
        assert (await router_api.client.get("/v1/rules", headers=headers)).status_code == 200
        async with session_factory(engine)() as session, session.begin():
            assert await revoke_api_key(session, row.id)
    finally:
        await engine.dispose()
    # Lookups are cached for KeyCache.ttl_s (5 s): the revoked key is refused once that passes.
    router_api.app.state.keys.ttl_s = 0.2  # keep the test short; the behaviour is the same
    router_api.app.state.keys._cache.clear()
    assert (await router_api.client.get("/v1/rules", headers=headers)).status_code == 401


async def test_repeated_rule_ids_and_weekday_ranges_are_refused_naming_the_value(router_api: Router) -> None:
    """Two rules with one id answered 422 naming "/" ("Value error, rules.1.id: ..."); a weekday
    "mon-fri" was stored as "mon", and the rule then matched on Mondays only."""
    team = await router_api.add_team("dup")
    twice = await router_api.put_rules({"rules": [rule("dup", team), rule("other", team), rule("dup", team)]})
    assert twice.status_code == 422 and twice.headers["content-type"] == "application/problem+json"
    assert twice.json()["errors"] == [
        {"field": "/rules/2/id", "message": "duplicate rule id 'dup' (also the id of rule 0)"}
    ]
    weekdays = rule("weekdays", team, when={"field": "weekday", "op": "in", "value": ["mon-fri"]})
    ranged = await router_api.put_rules({"rules": [weekdays]})
    assert ranged.status_code == 422, ranged.text
    assert [e["field"] for e in ranged.json()["errors"]] == ["/rules/0/when/value"]
    full = rule("weekdays", team, when={"field": "weekday", "op": "in", "value": ["Monday", "FRI"]})
    saved = await router_api.put_rules({"rules": [full]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["rules"][0]["when"]["value"] == ["mon", "fri"]


async def test_a_time_zone_of_many_path_segments_is_a_422_naming_it(router_api: Router) -> None:
    """ZoneInfo imports ``tzdata.zoneinfo.<segments>`` one package per segment: a "zone" of a few
    hundred ``a/`` segments raised RecursionError out of the validator, a 500 instead of a 422."""
    team = await router_api.add_team("zones")
    zone = "a/" * 2_000 + "b"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rules": [], "timezone": zone}, "/timezone"),
        ({"rules": [{**rule("r", team), "timezone": zone}]}, "/rules/0/timezone"),
    ]
    for document, field in cases:
        response = await router_api.put_rules(document)
        assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
    team_reply = await router_api.client.post(
        "/v1/teams", json={"name": "zoned", "timezone": zone}, headers=router_api.admin
    )
    assert team_reply.status_code == 422, team_reply.text
    assert [e["field"] for e in team_reply.json()["errors"]] == ["/timezone"]


async def test_a_regex_too_costly_to_search_is_a_422_and_a_stored_one_still_loads(router_api: Router) -> None:
    """``(?:\\w+\\s*){1000}$`` was saved, and the router searched it on every ticket at ~300 ms a
    10 KB text. Saving it is now refused naming the value; a version saved before the bound
    still reads back (the live set, its version document) rather than breaking every read."""
    slow = r"(?:\w+\s*){1000}$"
    team = await router_api.add_team("rx")
    costly = rule("costly", team, when={"field": "description", "op": "matches", "value": slow})
    refused = await router_api.put_rules({"rules": [costly]})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    [error] = refused.json()["errors"]
    assert error["field"] == "/rules/0/when/value" and "too costly" in error["message"]
    ordinary = rule(
        "ordinary", team, when={"field": "description", "op": "matches", "value": r"\border \d{6}\b"}
    )
    assert (await router_api.put_rules({"rules": [ordinary]})).status_code == 200

    old = RuleSet.model_validate({"rules": [costly]}, context=STORED)  # as saved before the bound
    async with router_api.app.state.sessions() as session, session.begin():
        row = await save_version(session, old, "tests", "saved before the regex cost bound")
    live = await router_api.client.get("/v1/rules", headers=router_api.viewer)
    assert live.status_code == 200 and live.json()["rules"][0]["when"]["value"] == slow
    stored = await router_api.client.get(f"/v1/rules/versions/{row.version}", headers=router_api.viewer)
    assert stored.status_code == 200, stored.text


async def test_a_single_rule_s_reference_errors_point_into_the_body_sent(router_api: Router) -> None:
    """POST /v1/rules, PUT and PATCH /v1/rules/{id} take one rule: an unknown team or SLA policy in
    it was named by its place in the whole set (``/rules/4/actions/assign_team``), a pointer into
    no body the client sent, while a schema error in the same body was ``/when/op``."""
    c, editor = router_api.client, router_api.editor
    team = await router_api.add_team("ref")
    seeded = await router_api.put_rules({"rules": [rule("first", team), rule("second", team)]})
    assert seeded.status_code == 200, seeded.text

    def at(etag: str) -> dict[str, str]:
        return {**editor, "If-Match": etag}

    async def fields(response: Any) -> list[str]:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return [e["field"] for e in response.json()["errors"]]

    etag = seeded.headers["ETag"]
    added = await c.post("/v1/rules", json=rule("third", "no-such-team"), headers=at(etag))
    assert await fields(added) == ["/actions/assign_team"]
    placed = await c.post(
        "/v1/rules",
        params={"position": 1},
        json={**rule("third", team), "actions": {"sla_policy": "no-such-policy"}},
        headers=at(etag),
    )
    assert await fields(placed) == ["/actions/sla_policy"]
    replaced = await c.put("/v1/rules/second", json=rule("second", "no-such-team"), headers=at(etag))
    assert await fields(replaced) == ["/actions/assign_team"]
    patched = await c.patch(
        "/v1/rules/second", json={"actions": {"assign_team": "no-such-team"}}, headers=at(etag)
    )
    assert await fields(patched) == ["/actions/assign_team"]
    assert "/actions/assign_team: rule 'second': unknown team" in patched.json()["detail"]
    # The whole set's own endpoint still names the rule's place in it.
    whole = await router_api.put_rules({"rules": [rule("first", team), rule("second", "no-such-team")]})
    assert await fields(whole) == ["/rules/1/actions/assign_team"]
