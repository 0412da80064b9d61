"""Write-back targets API, with the admin API's conventions: weak
``W/"writeback-target-<id>-<rev>.<generation>"`` ETags, If-Match required on PUT and DELETE
(428/412 problems naming the current ETag), one winner among concurrent edits, secrets write-only
and never audited, every change audited by key name."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event
from sqlalchemy.orm.exc import StaleDataError

from services.router.slas import service as sla_service
from services.router.writeback import service
from services.router.writeback.endpoints import router
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.schemas import TargetIn
from shared.auth import Role
from shared.db.audit import list_entries
from shared.events import utc_now
from shared.http.preconditions import Stale
from shared.http.problems import PROBLEM_JSON
from tests.integration.router_sla.helpers import api_client, new_id

ADMIN = "writeback admin"
SECRET = "s3cret-s3cret-s3cret"


async def client_for(sessions, role: Role = Role.ADMIN, name: str = ADMIN) -> httpx.AsyncClient:
    return await api_client(sessions, router, role, name)


def target(name: str, **changes: object) -> dict[str, object]:
    return {
        "name": name,
        "source": "zendesk",
        "url": "https://helpdesk.example.com/hooks/routing",
        "secret": SECRET,
        **changes,
    }


def tag(target_id: int, revision: int, generation: str) -> str:
    return f'W/"writeback-target-{target_id}-{revision}.{generation}"'


def generation_of(etag: str) -> str:
    """The generation an ETag carries (drawn when its target was created)."""
    found = re.fullmatch(r'W/"writeback-target-\d+-\d+\.([0-9a-f]{16})"', etag)
    assert found, etag
    return found.group(1)


def is_problem(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and response.headers["content-type"] == PROBLEM_JSON


async def test_update_and_delete_need_the_current_etag_and_never_return_the_secret(sessions):
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        created = await client.post("/v1/writeback/targets", json=target(name))
        target_id, gen = created.json()["id"], generation_of(created.headers["etag"])
        v1, url = tag(target_id, 1, gen), f"/v1/writeback/targets/{target_id}"
        assert created.status_code == 201 and created.headers["etag"] == v1
        assert created.headers["location"] == url
        assert "secret" not in created.json() and SECRET not in created.text
        assert (await client.get(url)).headers["etag"] == v1

        missing = await client.put(url, json=target(name, enabled=False))
        assert is_problem(missing, 428) and missing.headers["etag"] == v1
        old_form = await client.put(url, json=target(name, enabled=False), headers={"If-Match": '"1"'})
        assert is_problem(old_form, 412) and old_form.headers["etag"] == v1
        other = await client.put(url, json=target(name), headers={"If-Match": tag(target_id + 1, 1, gen)})
        assert is_problem(other, 412)
        updated = await client.put(url, json=target(name, enabled=False), headers={"If-Match": v1})
        assert updated.status_code == 200 and updated.headers["etag"] == tag(target_id, 2, gen)
        assert updated.json()["enabled"] is False and updated.json()["revision"] == 2
        stale = await client.put(url, json=target(name), headers={"If-Match": v1})
        assert is_problem(stale, 412) and stale.headers["etag"] == tag(target_id, 2, gen)
        assert (await client.get(url)).json()["enabled"] is False
        listed = await client.get("/v1/writeback/targets")
        assert target_id in {t["id"] for t in listed.json()} and SECRET not in listed.text

        no_match = await client.delete(url)
        assert is_problem(no_match, 428) and no_match.headers["etag"] == tag(target_id, 2, gen)
        stale_delete = await client.delete(url, headers={"If-Match": v1})
        assert is_problem(stale_delete, 412) and stale_delete.headers["etag"] == tag(target_id, 2, gen)
        assert (await client.get(url)).status_code == 200  # neither deleted it
        deleted = await client.delete(url, headers={"If-Match": f'W/"x-1", {tag(target_id, 2, gen)}'})
        assert deleted.status_code == 204
        assert is_problem(await client.get(url), 404)
        assert is_problem(await client.delete(url, headers={"If-Match": "*"}), 404)


async def test_etag_of_a_deleted_target_does_not_match_one_created_after_it(sessions):
    """SQLite gives a new target the id of the newest deleted one, and revisions start at 1: an
    If-Match read from the deleted target must not change or delete the new one."""
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        old = await client.post("/v1/writeback/targets", json=target(name))
        old_etag = old.headers["etag"]
        old_url = f"/v1/writeback/targets/{old.json()['id']}"
        assert (await client.delete(old_url, headers={"If-Match": old_etag})).status_code == 204
        new = await client.post("/v1/writeback/targets", json=target(name, enabled=False))
        assert new.status_code == 201, new.text
        url = f"/v1/writeback/targets/{new.json()['id']}"
        assert new.headers["etag"] != old_etag
        stale = await client.put(url, json=target(name), headers={"If-Match": old_etag})
        assert is_problem(stale, 412) and stale.headers["etag"] == new.headers["etag"]
        assert is_problem(await client.delete(url, headers={"If-Match": old_etag}), 412)
        assert (await client.get(url)).json()["enabled"] is False
        changed = await client.put(url, json=target(name), headers={"If-Match": new.headers["etag"]})
        assert changed.status_code == 200, changed.text
        assert (await client.delete(url, headers={"If-Match": changed.headers["etag"]})).status_code == 204


async def test_a_listed_current_etag_holds_after_a_deleted_targets(sessions):
    """If-Match lists ETags (RFC 9110 13.1.1), on one field line or several (5.3): the current one
    holds when listed after a deleted target's (on SQLite the same id and revision, another
    generation) and nothing else in the list matches."""
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        old = await client.post("/v1/writeback/targets", json=target(name))
        old_etag = old.headers["etag"]
        old_url = f"/v1/writeback/targets/{old.json()['id']}"
        assert (await client.delete(old_url, headers={"If-Match": old_etag})).status_code == 204
        new = await client.post("/v1/writeback/targets", json=target(name))
        url, current = f"/v1/writeback/targets/{new.json()['id']}", new.headers["etag"]
        gen = generation_of(current)
        listed = await client.put(
            url, json=target(name, enabled=False), headers={"If-Match": f"{old_etag}, {current}"}
        )
        assert listed.status_code == 200, listed.text
        assert listed.headers["etag"] == tag(new.json()["id"], 2, gen)
        stale = await client.put(url, json=target(name), headers={"If-Match": f"{old_etag}, {current}"})
        assert is_problem(stale, 412) and stale.headers["etag"] == listed.headers["etag"]
        lines = [("If-Match", old_etag), ("If-Match", listed.headers["etag"])]
        assert (await client.delete(url, headers=lines)).status_code == 204


async def test_changes_are_audited_by_key_name_without_the_secret(sessions):
    name, new_secret, start = f"target-{new_id()[:8]}", f"rotated-{new_id()}", utc_now()
    async with await client_for(sessions) as client:
        created = await client.post("/v1/writeback/targets", json=target(name))
        target_id, gen = created.json()["id"], generation_of(created.headers["etag"])
        url = f"/v1/writeback/targets/{target_id}"
        moved = target(name, url="https://elsewhere.example.com/hook", secret=new_secret)
        assert (
            await client.put(url, json=moved, headers={"If-Match": tag(target_id, 1, gen)})
        ).status_code == 200
        same = await client.put(url, json=moved, headers={"If-Match": tag(target_id, 2, gen)})
        assert same.status_code == 200 and same.headers["etag"] == tag(target_id, 2, gen)  # a no-op
        rotated = target(name, url="https://elsewhere.example.com/hook", secret=SECRET)
        assert (await client.put(url, json=rotated, headers={"If-Match": "*"})).status_code == 200
        assert (await client.delete(url, headers={"If-Match": tag(target_id, 3, gen)})).status_code == 204
    async with sessions() as session:
        # Since the start: SQLite reuses the id of a target another test deleted.
        audited = await list_entries(
            session, entity="writeback_target", entity_id=str(target_id), since=start
        )
    assert [(e.action, e.actor) for e in reversed(audited)] == [
        ("writeback_target.create", ADMIN),
        ("writeback_target.update", ADMIN),
        ("writeback_target.update", ADMIN),  # the no-op PUT is not a change
        ("writeback_target.delete", ADMIN),
    ]
    create, move, rotate, removal = (e.detail for e in reversed(audited))
    assert create["target"]["url"] == "https://helpdesk.example.com/hooks/routing"
    assert move["changes"] == {
        "url": {
            "old": "https://helpdesk.example.com/hooks/routing",
            "new": "https://elsewhere.example.com/hook",
        }
    }
    assert (move["secret_changed"], move["revision"]) == (True, 2)
    assert (rotate["changes"], rotate["secret_changed"]) == ({}, True)
    assert removal["target"]["name"] == name and removal["revision"] == 3
    serialized = json.dumps([(e.actor, e.action, e.entity_id, e.detail) for e in audited])
    assert SECRET not in serialized and new_secret not in serialized
    assert "secret" not in json.dumps([create, removal])  # not even the key


async def test_retrying_a_failed_delivery_is_audited(sessions):
    start = utc_now()
    async with sessions() as session, session.begin():
        failed = WritebackDelivery(
            target_id=0,  # no such target: the sender never claims it
            event_id=new_id()[:36],
            kind="assignment",
            ticket_key=f"api:{new_id()[:8]}",
            body="{}",
            status="failed",
            attempts=8,
            last_error="HTTP 500: boom",
        )
        session.add(failed)
    try:
        async with await client_for(sessions) as client:
            retried = await client.post(f"/v1/writeback/deliveries/{failed.id}/retry")
            assert retried.status_code == 200, retried.text
            assert (retried.json()["status"], retried.json()["attempts"]) == ("pending", 0)
            again = await client.post(f"/v1/writeback/deliveries/{failed.id}/retry")
            assert is_problem(again, 409) and "pending" in again.json()["detail"]
            assert is_problem(await client.post("/v1/writeback/deliveries/999999999/retry"), 404)
            pending = await client.get("/v1/writeback/deliveries", params={"status": "pending"})
            assert failed.id in {d["id"] for d in pending.json()}
        async with sessions() as session:
            audited = await list_entries(
                session, entity="writeback_delivery", entity_id=str(failed.id), since=start
            )
        assert [(e.action, e.actor) for e in audited] == [("writeback_delivery.retry", ADMIN)]
        assert audited[0].detail["attempts"] == 8 and audited[0].detail["last_error"] == "HTTP 500: boom"
    finally:
        async with sessions() as session, session.begin():
            await session.execute(delete(WritebackDelivery).where(WritebackDelivery.id == failed.id))


def unclaimed_deliveries(statuses: list[str]) -> list[WritebackDelivery]:
    """One delivery per status, for a target that does not exist: the sender never claims them."""
    return [
        WritebackDelivery(
            target_id=0,
            event_id=new_id()[:36],
            kind="assignment",
            ticket_key=f"api:{new_id()[:8]}",
            body="{}",
            status=status,
            attempts=1,
        )
        for status in statuses
    ]


async def test_deliveries_are_paged_newest_first_with_a_next_link(sessions):
    """The queue was listed up to ``limit`` (1,000 at most) with no way past it: ``before`` is now
    the cursor, and a full page's ``Link`` names the next, older one, the filter kept."""
    async with sessions() as session, session.begin():
        rows = unclaimed_deliveries(["delivered" if n == 2 else "failed" for n in range(6)])
        session.add_all(rows)
        await session.flush()
    ids = [row.id for row in rows]
    failed = [i for i in reversed(ids) if i != ids[2]]  # newest first
    try:
        async with await client_for(sessions) as client:
            url = "/v1/writeback/deliveries"
            first = await client.get(url, params={"status": "failed", "limit": 2, "before": ids[-1] + 1})
            assert [d["id"] for d in first.json()] == failed[:2]
            assert first.headers["link"] == f'<{url}?status=failed&limit=2&before={failed[1]}>; rel="next"'
            second = await client.get(first.headers["link"][1:].split(">")[0])
            assert [d["id"] for d in second.json()] == failed[2:4]  # the delivered one is left out
            third = await client.get(url, params={"status": "failed", "limit": 2, "before": failed[3]})
            assert [d["id"] for d in third.json()][:1] == failed[4:]
            short = await client.get(url, params={"limit": 1000, "before": ids[0]})
            assert len(short.json()) < 1000 and "link" not in short.headers
            for bad in ("0", str(2**63), "x"):
                refused = await client.get(url, params={"before": bad})
                assert is_problem(refused, 422) and refused.json()["errors"][0]["field"] == "/query/before"
            spec = (await client.get("/openapi.json")).json()["paths"][url]["get"]
            assert "before" in {p["name"] for p in spec["parameters"]}
            assert "Link" in spec["responses"]["200"]["headers"]
    finally:
        async with sessions() as session, session.begin():
            await session.execute(delete(WritebackDelivery).where(WritebackDelivery.id.in_(ids)))


async def test_a_page_of_failed_deliveries_is_read_from_the_status_index(database_url, engine, sessions):
    """``?status=failed&before=N`` fetched every failed delivery and sorted them for each page
    (or read the queue backwards by id, filtering on the status): failed deliveries are never
    pruned. An index on (status, id) reads just the page, already in order."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's query plan")
    async with sessions() as session, session.begin():
        rows = unclaimed_deliveries(["failed" if n % 40 == 0 else "delivered" for n in range(4000)])
        session.add_all(rows)
    ids = [row.id for row in rows]
    ran: list[tuple[str, object]] = []

    def capture(
        conn: object, cursor: object, statement: str, parameters: object, context: object, many: bool
    ) -> None:
        if "FROM writeback_deliveries" in statement:
            ran.append((statement, parameters))

    try:
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            async with sessions() as session:
                page = await service.list_deliveries(session, "failed", 50, before=ids[-1])
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
        assert [row.status for row in page] == ["failed"] * 50
        [(statement, parameters)] = ran  # what the endpoint runs, as it runs it
        async with engine.connect() as connection:
            await connection.exec_driver_sql("ANALYZE writeback_deliveries")
            plan = "\n".join(
                row[0] for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
        assert "Index Scan Backward using ix_writeback_deliveries_status_id" in plan, plan
        assert "Sort" not in plan and "Filter" not in plan, plan
    finally:
        async with sessions() as session, session.begin():
            await session.execute(delete(WritebackDelivery).where(WritebackDelivery.id.in_(ids)))


async def test_problems_name_the_field_and_viewers_only_read(sessions):
    taken, name = f"taken-{new_id()[:8]}", f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        assert (await client.post("/v1/writeback/targets", json=target(taken))).status_code == 201
        duplicate = await client.post("/v1/writeback/targets", json=target(taken))
        assert is_problem(duplicate, 409)
        assert duplicate.json()["errors"] == [{"field": "/name", "message": "already exists"}]
        created = await client.post("/v1/writeback/targets", json=target(name))
        url = f"/v1/writeback/targets/{created.json()['id']}"
        renamed = await client.put(url, json=target(taken), headers={"If-Match": "*"})
        assert is_problem(renamed, 409) and renamed.json()["errors"][0]["field"] == "/name"
        bad = await client.post(
            "/v1/writeback/targets", json=target(name, event_kinds=["nope"], secret="short", extra=1)
        )
        assert is_problem(bad, 422)
        assert {e["field"] for e in bad.json()["errors"]} == {"/event_kinds", "/secret", "/extra"}
        assert "short" not in bad.text  # a rejected secret is not echoed either
        missing = await client.put(
            "/v1/writeback/targets/999999999", json=target(name), headers={"If-Match": "*"}
        )
        assert is_problem(missing, 404)
        assert is_problem(await client.get(f"/v1/writeback/targets/{2**63}"), 422)
    async with await client_for(sessions, Role.VIEWER, "writeback viewer") as viewer:
        assert (await viewer.get(url)).status_code == 200
        assert (await viewer.get("/v1/writeback/deliveries")).status_code == 200
        assert is_problem(await viewer.post("/v1/writeback/targets", json=target("x")), 403)
        assert is_problem(await viewer.delete(url, headers={"If-Match": "*"}), 403)


async def test_concurrent_updates_with_one_etag_have_one_winner(sessions):
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        created = await client.post("/v1/writeback/targets", json=target(name))
        target_id, gen = created.json()["id"], generation_of(created.headers["etag"])
        url = f"/v1/writeback/targets/{target_id}"
        v1 = {"If-Match": tag(target_id, 1, gen)}
        responses = await asyncio.gather(
            *(client.put(url, json=target(name, source=f"source-{i}"), headers=v1) for i in range(4))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 412, 412, 412], [r.text for r in responses]
        final = (await client.get(url)).json()
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert final["revision"] == 2 and final["source"] == winner["source"]
    assert {r.headers["etag"] for r in responses} == {tag(target_id, 2, gen)}  # the losers learn it too


@pytest.mark.parametrize("change", ["update", "delete"])
async def test_a_change_checked_against_a_stale_read_is_refused(sessions, change):
    """Both admins passed the If-Match check on revision 1; the later flush must fail, not overwrite."""
    start = utc_now()
    async with sessions() as session, session.begin():
        row = await service.create_target(session, TargetIn.model_validate(target(f"t-{new_id()[:8]}")), "a")
    async with sessions() as slow:
        await slow.begin()
        seen = await slow.get(WritebackTarget, row.id)  # what the slow admin's check will see
        assert seen is not None and seen.revision == 1
        async with sessions() as fast, fast.begin():
            await service.update_target(
                fast, row.id, TargetIn.model_validate(target(row.name, source="fast")), expected=1, actor="b"
            )
        with pytest.raises(Stale) as refused:
            if change == "update":
                body = TargetIn.model_validate(target(row.name, source="slow"))
                await service.update_target(slow, row.id, body, expected=1, actor="c")
            else:
                await service.delete_target(slow, row.id, expected=1, actor="c")
        assert refused.value.current_etag == tag(row.id, 2, row.generation)
        assert isinstance(refused.value.__cause__, StaleDataError)
        await slow.rollback()
    async with sessions() as session:
        final = await session.get(WritebackTarget, row.id)
        audited = await list_entries(session, entity="writeback_target", entity_id=str(row.id), since=start)
    assert final is not None and (final.source, final.revision) == ("fast", 2)
    assert [e.actor for e in audited] == ["b", "a"]


def test_openapi_documents_problems_and_etags():
    app = FastAPI()
    app.include_router(router)
    paths = app.openapi()["paths"]
    one, many = paths["/v1/writeback/targets/{target_id}"], paths["/v1/writeback/targets"]
    assert {"404", "412", "428"} <= set(one["put"]["responses"])
    assert "ETag" in one["put"]["responses"]["200"]["headers"]
    assert {"404", "412", "428"} <= set(one["delete"]["responses"])
    assert "If-Match" in {p["name"] for p in one["delete"]["parameters"]}
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    assert "409" in many["post"]["responses"] and "ETag" in many["post"]["responses"]["201"]["headers"]
    retry = paths["/v1/writeback/deliveries/{delivery_id}/retry"]["post"]["responses"]
    assert {"404", "409"} <= set(retry)
    assert PROBLEM_JSON in retry["409"]["content"]


async def test_a_target_a_policy_notifies_cannot_be_deleted_or_renamed(sessions):
    name, policy = f"target-{new_id()[:8]}", f"notifies-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        created = await client.post("/v1/writeback/targets", json=target(name))
        url, etag = f"/v1/writeback/targets/{created.json()['id']}", created.headers["etag"]
        document = {
            "name": policy,
            "targets": {"P3": {"first_response": 60, "resolution": 240}},
            "applies_when": {"field": "customer_tier", "op": "equals", "value": policy},  # no one's
            "on_breach": [{"action": "notify", "target": name}],
        }
        async with sessions() as session, session.begin():
            await sla_service.save(session, "policy", policy, document, "t", previous=None)
        # Gone or renamed, the policy's breaches would notify no one, and nothing would say so.
        deleted = await client.delete(url, headers={"If-Match": etag})
        assert is_problem(deleted, 409) and policy in deleted.json()["detail"]
        renamed = await client.put(url, headers={"If-Match": etag}, json=target(f"{name}-2"))
        assert is_problem(renamed, 409) and renamed.json()["errors"][0]["field"] == "/name"
        async with sessions() as session, session.begin():
            previous = await sla_service.latest(session, "policy", policy)
            await sla_service.save(session, "policy", policy, None, "t", previous=previous)
        assert (await client.delete(url, headers={"If-Match": etag})).status_code == 204


async def test_a_repeated_event_kind_is_kept_once(sessions):
    """``event_kinds`` is a set of kinds: a repeat was stored (and searched, for every event the
    target might take) as given, and saving the same kinds without it counted as a change."""
    name = f"target-{new_id()[:8]}"
    async with await client_for(sessions) as client:
        kinds = ["assignment", "sla_breach", "assignment", "sla_breach"]
        created = await client.post("/v1/writeback/targets", json=target(name, event_kinds=kinds))
        assert created.status_code == 201, created.text
        assert created.json()["event_kinds"] == ["assignment", "sla_breach"]
        url = f"/v1/writeback/targets/{created.json()['id']}"
        same = await client.put(
            url,
            json=target(name, event_kinds=["assignment", "sla_breach"]),
            headers={"If-Match": created.headers["etag"]},
        )
        assert same.status_code == 200 and same.headers["etag"] == created.headers["etag"]  # no change
        assert (await client.delete(url, headers={"If-Match": "*"})).status_code == 204
