"""The sources admin API, the ticketctl commands, the source cache and delivery pruning."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from typer.testing import CliRunner

from services.intake.deliveries import prune_deliveries
from services.intake.models import Source, WebhookDelivery
from services.intake.sources import service
from services.intake.sources.schemas import SourceCreate, SourceUpdate
from services.intake.sources.service import fingerprint
from services.ticketctl.main import app as ticketctl
from shared.db.audit import list_entries
from shared.events import utc_now
from shared.http.preconditions import Stale
from shared.http.problems import PROBLEM_JSON
from tests.integration.intake.helpers import Intake, read_topic, running_intake
from tests.unit.webhooks._helpers import basic

SECRET = "admin-test-secret-1"
NEW_SECRET = "admin-test-secret-2"


async def test_crud_never_returns_secrets_and_is_audited(
    intake: Intake, sessions: async_sessionmaker[AsyncSession]
) -> None:
    name = f"zd-{uuid.uuid4().hex[:8]}"
    created = await intake.client.post(
        "/v1/sources",
        headers=intake.admin,
        json={"name": name, "type": "zendesk", "secret": SECRET, "options": {"timestamp_tolerance": 60}},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret_count"] == 1 and len(body["secret_fingerprints"]) == 1 and SECRET not in created.text
    assert body["webhook_path"] == f"/v1/webhooks/{name}"

    conflict = await intake.client.post(
        "/v1/sources", headers=intake.admin, json={"name": name, "type": "zendesk", "secret": SECRET}
    )
    assert conflict.status_code == 409 and conflict.json()["errors"][0]["field"] == "/name"

    listed = await intake.client.get("/v1/sources", headers=intake.admin)
    assert name in [s["name"] for s in listed.json()] and SECRET not in listed.text
    one = await intake.client.get(f"/v1/sources/{name}", headers=intake.admin)
    assert one.status_code == 200 and one.json()["options"] == {"timestamp_tolerance": 60}

    patched = await intake.client.patch(
        f"/v1/sources/{name}",
        headers={**intake.admin, "If-Match": one.headers["etag"]},
        json={"enabled": False, "options": {}},
    )
    assert patched.json()["enabled"] is False and patched.json()["options"] == {}
    rotated = await intake.client.post(
        f"/v1/sources/{name}/rotate",
        headers={**intake.admin, "If-Match": patched.headers["etag"]},
        json={"secret": NEW_SECRET},
    )
    assert rotated.status_code == 200 and rotated.json()["secret_count"] == 2

    deleted = await intake.client.delete(
        f"/v1/sources/{name}", headers={**intake.admin, "If-Match": rotated.headers["etag"]}
    )
    assert deleted.status_code == 204
    missing = await intake.client.get(f"/v1/sources/{name}", headers=intake.admin)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"

    # Every change is in the audit log under the admin key's name, secrets by fingerprint only.
    async with sessions() as session:
        entries = list(reversed(await list_entries(session, entity="source", entity_id=name)))
    assert [(e.action, e.actor) for e in entries] == [
        (f"source.{action}", "test admin") for action in ("create", "update", "rotate", "delete")
    ]
    assert entries[1].detail["changes"] == {
        "options": {"old": {"timestamp_tolerance": 60}, "new": {}},
        "enabled": {"old": True, "new": False},
    }
    assert entries[2].detail["secrets"] == [fingerprint(SECRET), fingerprint(NEW_SECRET)]
    assert [e.detail["revision"] for e in entries] == [1, 2, 3, 3]  # delete: the revision removed
    logged = json.dumps([e.detail for e in entries])
    assert SECRET not in logged and NEW_SECRET not in logged


def tag(name: str, revision: int, generation: str) -> str:
    return f'W/"source-{name}-{revision}.{generation}"'


def generation_of(etag: str) -> str:
    """The generation an ETag carries (drawn when its source was created)."""
    found = re.fullmatch(r'W/"source-.+-\d+\.([0-9a-f]{16})"', etag)
    assert found, etag
    return found.group(1)


def is_problem(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and response.headers["content-type"] == PROBLEM_JSON


async def test_etag_of_a_deleted_source_does_not_match_its_successor(intake: Intake) -> None:
    """A source created again under a deleted one's name starts at revision 1 again: an If-Match
    read from the deleted source must not change, rotate or delete the new one."""
    name = f"reborn-{uuid.uuid4().hex[:8]}"
    url = f"/v1/sources/{name}"
    old = await intake.add_source(name, "native", SECRET)
    old_etag = old.headers["etag"]
    assert (
        await intake.client.delete(url, headers={**intake.admin, "If-Match": old_etag})
    ).status_code == 204
    new = await intake.add_source(name, "native", NEW_SECRET)
    assert new.status_code == 201, new.text
    assert new.headers["etag"] != old_etag
    headers = {**intake.admin, "If-Match": old_etag}
    for response in [
        await intake.client.patch(url, headers=headers, json={"enabled": False}),
        await intake.client.post(f"{url}/rotate", headers=headers, json={"secret": SECRET}),
        await intake.client.delete(url, headers=headers),
    ]:
        assert is_problem(response, 412), response.text
        assert response.headers["etag"] == new.headers["etag"]
    kept = await intake.client.get(url, headers=intake.admin)
    assert kept.json()["enabled"] is True and kept.json()["secret_fingerprints"] == [fingerprint(NEW_SECRET)]
    patched = await intake.client.patch(
        url, headers={**intake.admin, "If-Match": new.headers["etag"]}, json={"enabled": False}
    )
    assert patched.status_code == 200, patched.text


async def test_changes_need_the_current_etag(intake: Intake) -> None:
    """PATCH, rotate and DELETE: 428 without If-Match, 412 when stale, both naming the current ETag."""
    name = f"etag-{uuid.uuid4().hex[:8]}"
    url = f"/v1/sources/{name}"
    created = await intake.add_source(name, "native", SECRET)
    gen = generation_of(created.headers["etag"])
    assert created.headers["etag"] == tag(name, 1, gen) and created.headers["location"] == url
    assert created.json()["revision"] == 1
    one = await intake.client.get(url, headers=intake.admin)
    assert one.headers["etag"] == tag(name, 1, gen) and one.json()["revision"] == 1

    def changes(if_match: str | None) -> list[Awaitable[httpx.Response]]:
        headers = intake.admin if if_match is None else {**intake.admin, "If-Match": if_match}
        return [
            intake.client.patch(url, headers=headers, json={"enabled": False}),
            intake.client.post(f"{url}/rotate", headers=headers, json={"secret": NEW_SECRET}),
            intake.client.delete(url, headers=headers),
        ]

    for response in [await change for change in changes(None)]:
        assert is_problem(response, 428), response.text
        assert (
            response.headers["etag"] == tag(name, 1, gen) and tag(name, 1, gen) in response.json()["detail"]
        )
    patched = await intake.client.patch(
        url, headers={**intake.admin, "If-Match": tag(name, 1, gen)}, json={"enabled": False}
    )
    assert patched.status_code == 200 and patched.headers["etag"] == tag(name, 2, gen)
    assert patched.json()["revision"] == 2 and patched.json()["enabled"] is False

    # A stale ETag, another source's, or a malformed one: 412 naming the current ETag; nothing changes.
    for stale_tag in (tag(name, 1, gen), tag(f"{name}-x", 2, gen), f'W/"source-{name}-2"', "W/garbage"):
        for response in [await change for change in changes(stale_tag)]:
            assert is_problem(response, 412), response.text
            assert (
                response.headers["etag"] == tag(name, 2, gen)
                and tag(name, 2, gen) in response.json()["detail"]
            )

    # A no-op keeps the revision; the list form and `*` are accepted, each change bumps it.
    noop = await intake.client.patch(
        url, headers={**intake.admin, "If-Match": tag(name, 2, gen)}, json={"enabled": False}
    )
    assert noop.status_code == 200 and noop.headers["etag"] == tag(name, 2, gen)
    listed = f'W/"source-other-9", {tag(name, 2, gen)}'
    rotated = await intake.client.post(
        f"{url}/rotate", headers={**intake.admin, "If-Match": listed}, json={"secret": NEW_SECRET}
    )
    assert rotated.status_code == 200 and rotated.headers["etag"] == tag(name, 3, gen)
    assert rotated.json()["revision"] == 3
    enabled = await intake.client.patch(
        url, headers={**intake.admin, "If-Match": "*"}, json={"enabled": True}
    )
    assert enabled.status_code == 200 and enabled.headers["etag"] == tag(name, 4, gen)
    deleted = await intake.client.delete(
        url, headers={**intake.admin, "If-Match": f'"source-{name}-4.{gen}"'}
    )
    assert deleted.status_code == 204
    assert is_problem(await intake.client.get(url, headers=intake.admin), 404)
    # An unknown source is a 404 whether or not If-Match was sent.
    assert is_problem(await intake.client.delete(url, headers=intake.admin), 404)


async def test_rotating_to_the_newest_secret_again_is_a_no_op(
    intake: Intake, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The secrets stay as they were: the revision (and the ETag other clients hold) stays and
    nothing is audited, as for a PATCH that changes nothing."""
    name = f"rot-{uuid.uuid4().hex[:8]}"
    created = await intake.add_source(name, "native", SECRET)
    again = await intake.client.post(
        f"/v1/sources/{name}/rotate",
        headers={**intake.admin, "If-Match": created.headers["etag"]},
        json={"secret": SECRET},
    )
    assert again.status_code == 200, again.text
    assert again.headers["etag"] == created.headers["etag"] and again.json()["revision"] == 1
    async with sessions() as session:
        audited = await list_entries(session, entity="source", entity_id=name)
    assert [entry.action for entry in audited] == ["source.create"]


async def test_if_match_lists_and_field_lines(intake: Intake) -> None:
    """A list holds when any tag in it is current, also only a later one (RFC 9110 13.1.1); several
    If-Match field lines are one list (RFC 9110 5.3); '*' inside a list is malformed: 412."""
    name = f"lists-{uuid.uuid4().hex[:8]}"
    url = f"/v1/sources/{name}"
    gen = generation_of((await intake.add_source(name, "native", SECRET)).headers["etag"])
    other = "0" * 16 if gen != "0" * 16 else "1" * 16
    listed = f"{tag(name, 2, gen)}, {tag(name, 1, other)}, {tag(name, 1, gen)}"
    patched = await intake.client.patch(
        url, headers={**intake.admin, "If-Match": listed}, json={"enabled": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == tag(name, 2, gen)
    lines = [*intake.admin.items(), ("If-Match", tag(name, 1, gen)), ("If-Match", tag(name, 2, gen))]
    rotated = await intake.client.post(f"{url}/rotate", headers=lines, json={"secret": NEW_SECRET})
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["etag"] == tag(name, 3, gen)
    starred = await intake.client.delete(url, headers={**intake.admin, "If-Match": f"*, {tag(name, 3, gen)}"})
    assert is_problem(starred, 412) and starred.headers["etag"] == tag(name, 3, gen)


async def test_openapi_documents_if_match_and_etags(intake: Intake) -> None:
    paths = intake.app.openapi()["paths"]
    for path, method in (
        ("/v1/sources/{name}", "patch"),
        ("/v1/sources/{name}", "delete"),
        ("/v1/sources/{name}/rotate", "post"),
    ):
        operation = paths[path][method]
        assert "If-Match" in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert {"412", "428"} <= set(operation["responses"])
        assert "ETag" in operation["responses"]["412"]["headers"]
    for path, method, status in (
        ("/v1/sources", "post", "201"),
        ("/v1/sources/{name}", "get", "200"),
        ("/v1/sources/{name}", "patch", "200"),
        ("/v1/sources/{name}/rotate", "post", "200"),
    ):
        assert "ETag" in paths[path][method]["responses"][status]["headers"], (path, method)


@pytest.mark.parametrize("change", ["update", "rotate", "delete"])
async def test_a_change_checked_against_a_stale_read_is_refused(
    sessions: async_sessionmaker[AsyncSession], change: str
) -> None:
    """Both admins passed the If-Match check on revision 1; the later flush must fail, not overwrite."""
    name = f"race-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await service.create_source(session, SourceCreate(name=name, type="native", secret=SECRET), "a")
    async with sessions() as slow:
        await slow.begin()
        seen = await slow.get(Source, name)  # what the slow admin's check will see
        assert seen is not None and seen.revision == 1
        generation = seen.generation
        async with sessions() as fast, fast.begin():
            await service.update_source(fast, name, SourceUpdate(enabled=False), expected=1, actor="b")
        with pytest.raises(Stale) as refused:
            if change == "update":
                await service.update_source(
                    slow, name, SourceUpdate(options={"auth_header": "X-Slow"}), expected=1, actor="c"
                )
            elif change == "rotate":
                await service.rotate_secret(slow, name, NEW_SECRET, expected=1, actor="c")
            else:
                await service.delete_source(slow, name, expected=1, actor="c")
        assert refused.value.current_etag == tag(name, 2, generation)
        assert isinstance(refused.value.__cause__, StaleDataError)
        await slow.rollback()
    async with sessions() as session:
        final = await session.get(Source, name)
        audited = await list_entries(session, entity="source", entity_id=name)
    assert final is not None and (final.enabled, final.revision, final.secrets) == (False, 2, [SECRET])
    assert final.options == {}
    assert [e.actor for e in audited] == ["b", "a"]


async def test_generic_mapping_is_validated_naming_the_field(intake: Intake) -> None:
    response = await intake.client.post(
        "/v1/sources",
        headers=intake.admin,
        json={
            "name": f"gen-{uuid.uuid4().hex[:8]}",
            "type": "generic",
            "secret": SECRET,
            "options": {"mapping": {"subject": "/title"}},
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "/options/mapping/external_id"
    bad_path = await intake.client.post(
        "/v1/sources",
        headers=intake.admin,
        json={
            "name": f"gen-{uuid.uuid4().hex[:8]}",
            "type": "generic",
            "secret": SECRET,
            "options": {"mapping": {"external_id": "$.[[["}},
        },
    )
    assert (
        bad_path.status_code == 422
        and bad_path.json()["errors"][0]["field"] == "/options/mapping/external_id"
    )


async def test_every_adapters_word_tables_are_checked_naming_the_word(intake: Intake) -> None:
    """A Jira source's status_map sending a word to no status was stored (201), and every delivery
    of an issue in that workflow state was refused (422): Jira does not retry those."""
    name = f"jira-{uuid.uuid4().hex[:8]}"
    bad = {"status_map": {"Waiting for support": "pendng"}}
    body = {"name": name, "type": "jira", "secret": SECRET, "options": bad}
    refused = await intake.client.post("/v1/sources", headers=intake.admin, json=body)
    assert is_problem(refused, 422), refused.text
    assert refused.json()["errors"][0]["field"] == "/options/status_map/Waiting for support"
    created = await intake.add_source(name, "jira", SECRET, status_map={"Waiting for support": "pending"})
    patched = await intake.client.patch(
        f"/v1/sources/{name}",
        headers={**intake.admin, "If-Match": created.headers["etag"]},
        json={"options": {"priority_map": {"Sev1": "P0"}}},
    )
    assert is_problem(patched, 422), patched.text
    assert patched.json()["errors"][0]["field"] == "/options/priority_map/Sev1"
    kept = await intake.client.get(f"/v1/sources/{name}", headers=intake.admin)
    assert kept.json()["options"] == {"status_map": {"Waiting for support": "pending"}}


@pytest.mark.parametrize(
    ("adapter", "option", "value"),
    [
        ("generic", "auth_header", "X-Webhook-Secret "),  # pasted with a space: never a header's name
        ("generic", "auth_header", "X Webhook Secret"),
        ("generic", "delivery_header", "X-Request-Id:"),
        ("freshdesk", "auth_header", "X-Secret\t"),
        ("freshdesk", "auth_header", "X-Geheimnis-\u00e4"),
        # A native source takes its delivery id from delivery_header too: one that is no header
        # name was stored, and its deliveries were deduplicated by their bodies' hash instead.
        ("native", "delivery_header", "X-Request-Id "),
        ("native", "delivery_header", "X Request Id"),
    ],
)
async def test_a_header_option_must_be_a_header_name(
    intake: Intake, adapter: str, option: str, value: str
) -> None:
    """A webhook's header is looked up by that exact name: one that is no header name (RFC 9110
    token) matched no request, so every delivery was refused as missing its secret."""
    options: dict[str, object] = {option: value}
    if adapter == "generic":
        options["mapping"] = {"external_id": "/id"}
    body = {"name": f"hdr-{uuid.uuid4().hex[:8]}", "type": adapter, "secret": SECRET, "options": options}
    refused = await intake.client.post("/v1/sources", headers=intake.admin, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": f"/options/{option}", "message": f"{option}: expected a header name"}
    ]


async def test_a_retired_secret_no_longer_signs_and_the_last_one_stays(
    intake: Intake, sessions: async_sessionmaker[AsyncSession]
) -> None:
    name = f"native-{uuid.uuid4().hex[:8]}"
    await intake.add_source(name, "native", SECRET)
    url = f"/v1/sources/{name}"

    async def post(secret: str) -> int:
        body = json.dumps({"external_id": f"r-{uuid.uuid4().hex[:6]}"}).encode()
        headers = {"Content-Type": "application/json", "Authorization": basic("x", secret)}
        return (await intake.client.post(f"/v1/webhooks/{name}", content=body, headers=headers)).status_code

    read = await intake.client.get(url, headers=intake.admin)
    rotated = await intake.client.post(
        f"{url}/rotate",
        headers={**intake.admin, "If-Match": read.headers["etag"]},
        json={"secret": NEW_SECRET},
    )
    assert (await post(SECRET), await post(NEW_SECRET)) == (202, 202)  # mid-rotation: both sign
    # The sender signs with the new one now: the old one is retired (or a leaked one, at once).
    old = fingerprint(SECRET)
    unknown = await intake.client.delete(
        f"{url}/secrets/0badf00d", headers={**intake.admin, "If-Match": rotated.headers["etag"]}
    )
    assert is_problem(unknown, 404) and old in unknown.json()["detail"]
    retired = await intake.client.delete(
        f"{url}/secrets/{old}", headers={**intake.admin, "If-Match": rotated.headers["etag"]}
    )
    assert retired.status_code == 200
    assert retired.json()["secret_fingerprints"] == [fingerprint(NEW_SECRET)]
    assert (await post(SECRET), await post(NEW_SECRET)) == (401, 202)
    last = await intake.client.delete(
        f"{url}/secrets/{fingerprint(NEW_SECRET)}",
        headers={**intake.admin, "If-Match": retired.headers["etag"]},
    )
    assert is_problem(last, 409) and "rotate first" in last.json()["detail"]
    async with sessions() as session:
        entry = (await list_entries(session, entity="source", entity_id=name))[0]  # the newest
    assert (
        entry.action == "source.retire_secret"
        and entry.detail["retired"] == old
        and SECRET not in json.dumps(entry.detail)
    )


async def test_concurrent_creates_of_one_name_are_conflicts_not_errors(intake: Intake) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    answers = await asyncio.gather(
        *(
            intake.client.post(
                "/v1/sources",
                headers=intake.admin,
                json={"name": name, "type": "github", "secret": f"whsec-race-{n}-0123456789"},
            )
            for n in range(4)
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert all(a.json()["errors"][0]["field"] == "/name" for a in answers if a.status_code == 409)
    deleted = await intake.client.delete(f"/v1/sources/{name}", headers={**intake.admin, "If-Match": "*"})
    assert deleted.status_code == 204


async def test_bodies_that_are_not_json_or_hold_u0000_are_refused_naming_where(intake: Intake) -> None:
    form = await intake.client.post(
        "/v1/sources", headers=intake.admin, data={"name": "x", "type": "github", "secret": SECRET}
    )
    assert form.status_code == 415 and form.headers["content-type"] == PROBLEM_JSON
    assert form.json()["errors"][0]["field"] == "/header/content-type"
    nul = await intake.client.post(
        "/v1/sources",
        headers=intake.admin,
        json={
            "name": "nul",
            "type": "generic",
            "secret": SECRET,
            "options": {"mapping": {"subject": "/a\x00"}},
        },
    )
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "/options/mapping/subject"


async def test_an_undeclared_query_parameter_is_refused_but_not_on_webhooks(intake: Intake) -> None:
    """The admin API refuses a query parameter it does not declare (400 naming ``/query/<name>``);
    a webhook takes whatever the vendor adds, and so do the probes."""
    name = f"native-{uuid.uuid4().hex[:8]}"
    await intake.add_source(name, "native", SECRET)
    typo = await intake.client.get(f"/v1/sources/{name}", params={"verbose": "1"}, headers=intake.admin)
    assert is_problem(typo, 400) and [e["field"] for e in typo.json()["errors"]] == ["/query/verbose"]
    assert "verbose" in typo.json()["detail"]
    listed = await intake.client.get("/v1/sources", params={"type": "zendesk"}, headers=intake.admin)
    assert is_problem(listed, 400) and listed.json()["errors"][0]["field"] == "/query/type"
    body = json.dumps({"external_id": f"q-{uuid.uuid4().hex[:6]}"}).encode()
    headers = {"Content-Type": "application/json", "Authorization": basic("x", SECRET)}
    delivered = await intake.client.post(
        f"/v1/webhooks/{name}", params={"vendor_token": "abc"}, content=body, headers=headers
    )
    assert delivered.status_code == 202, delivered.text
    assert (await intake.client.get("/healthz", params={"probe": "1"})).status_code == 200
    assert (await intake.client.get("/metrics", params={"probe": "1"})).status_code == 200


async def test_enabled_is_true_or_false_not_a_string_or_number(intake: Intake) -> None:
    """Lax mode took "yes", "1" or 0 for ``enabled``: a JSON boolean is true or false."""
    body = {"type": "native", "secret": SECRET}
    for value in ("yes", "1", 0):
        refused = await intake.client.post(
            "/v1/sources",
            headers=intake.admin,
            json={**body, "name": f"b-{uuid.uuid4().hex[:8]}", "enabled": value},
        )
        assert is_problem(refused, 422) and [e["field"] for e in refused.json()["errors"]] == ["/enabled"]
    name = f"b-{uuid.uuid4().hex[:8]}"
    created = await intake.client.post(
        "/v1/sources", headers=intake.admin, json={**body, "name": name, "enabled": False}
    )
    assert created.status_code == 201 and created.json()["enabled"] is False
    patched = await intake.client.patch(
        f"/v1/sources/{name}",
        headers={**intake.admin, "If-Match": created.headers["etag"]},
        json={"enabled": "true"},
    )
    assert is_problem(patched, 422) and patched.json()["errors"][0]["field"] == "/enabled"


async def test_admin_role_required(intake: Intake) -> None:
    assert (await intake.client.get("/v1/sources")).status_code == 401
    assert (await intake.client.get("/v1/sources", headers=intake.intake)).status_code == 403


async def test_an_anonymous_body_over_the_cap_is_refused_unread(intake: Intake) -> None:
    """FastAPI reads and parses a body before the key check: without a cap, anyone could make the
    intake (the service facing the internet) buffer and parse any amount sent to /v1/sources. A
    body over INTAKE_MAX_BODY_BYTES is refused with 413 before the key check, and not read on."""
    limit = intake.settings.intake_max_body_bytes
    sent = 0

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: read until the cap passes
        nonlocal sent
        yield b'{"name": "big", "type": "github", "secret": "' + b"s" * 1000
        for _ in range(20 * limit // 65536):
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    streamed = await intake.client.post(
        "/v1/sources", headers={"Content-Type": "application/json"}, content=stream()
    )
    assert streamed.status_code == 413 and streamed.headers["content-type"] == PROBLEM_JSON
    assert sent <= 2 * limit
    announced = await intake.client.post(
        "/v1/sources",
        headers={"Content-Type": "application/json", "Content-Length": str(limit + 1)},
        content=b"{" + b" " * limit,
    )
    assert announced.status_code == 413 and announced.headers["content-type"] == PROBLEM_JSON
    within = await intake.client.post("/v1/sources", headers=intake.admin, json={"name": "x" * 101})
    assert within.status_code == 422  # under the cap: checked as before


async def test_cache_picks_up_changes_made_elsewhere_within_ttl(
    settings_kwargs: dict[str, object], database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with running_intake(
        database_url=database_url, intake_source_cache_ttl_s=0.3, **settings_kwargs
    ) as intake:
        name = f"native-{uuid.uuid4().hex[:8]}"
        await intake.add_source(name, "native", SECRET)
        post = lambda i: intake.client.post(  # noqa: E731
            f"/v1/webhooks/{name}",
            content=json.dumps({"external_id": f"c-{i}"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": basic("x", SECRET)},
        )
        assert (await post(1)).status_code == 202
        async with sessions() as session, session.begin():  # what ticketctl (another process) does
            await service.update_source(
                session, name, SourceUpdate(enabled=False), expected=None, actor="tests"
            )
        await asyncio.sleep(0.4)
        assert (await post(2)).status_code == 404


def test_ticketctl_sources(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    name = f"cli-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> str:
        result = runner.invoke(ticketctl, ["sources", *args])
        assert result.exit_code == 0, result.output
        return result.output

    added = run(
        "add",
        name,
        "--type",
        "generic",
        "--secret",
        "cli-secret-0007",
        "--option",
        "mapping.external_id=/id",
        "--option",
        "delivery_header=X-Request-Id",
    )
    assert "cli-secret-0007" not in added and "1 secret(s)" in added
    # A fingerprint list reads as a Rich markup tag when it starts with a letter ("[fec80d8e, ...]"):
    # printed as text, it is not swallowed.
    assert fingerprint("cli-secret-0007") in added
    assert name in run("list")
    rotated = run("rotate", name, "--secret", "cli-secret-0011")
    assert "2 secret(s)" in rotated and fingerprint("cli-secret-0011") in rotated
    retired = run("retire-secret", name, fingerprint("cli-secret-0007"))
    assert "1 secret(s)" in retired and fingerprint("cli-secret-0007") not in retired
    assert "disabled" in run("disable", name)
    assert "enabled" in run("enable", name)
    bad = runner.invoke(
        ticketctl,
        [
            "sources",
            "add",
            f"{name}-x",
            "--type",
            "generic",
            "--secret",
            "cli-secret-0001",
            "--option",
            "mapping.subject=/s",
        ],
    )
    assert bad.exit_code == 1 and "mapping.external_id" in bad.stderr and not bad.stdout
    run("remove", name)
    gone = runner.invoke(ticketctl, ["sources", "remove", name])
    assert gone.exit_code == 1 and name in gone.stderr and not gone.stdout, gone.output

    async def stored() -> Source | None:
        from shared.db.engine import create_engine, session_factory

        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                return await session.get(Source, name)
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) is None


async def test_ticketctl_sources_remove_retires_the_name(
    intake: Intake, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sources remove`` deletes through the same service function as the API, so the name is
    remembered as a webhook source's: POST /v1/tickets refuses it (it was free after a removal)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    name = f"cli-{uuid.uuid4().hex[:8]}"
    for args in (["add", name, "--type", "native", "--secret", "cli-secret-0009"], ["remove", name]):
        # In a thread: the command runs its own event loop.
        result = await asyncio.to_thread(runner.invoke, ticketctl, ["sources", *args])
        assert result.exit_code == 0, result.output
    # This replica never read the name: its first read finds the retired name.
    answer = await intake.client.post(
        "/v1/tickets", headers=intake.intake, json={"external_id": "1", "source": name}
    )
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "/source" and "belonged to a webhook source" in error["message"]


def test_ticketctl_sources_update_changes_options(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sources update``: options given are merged into the stored ones (dotted keys nest),
    ``--unset`` drops one, ``--replace`` stores only those given; each mistake is one line."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    name = f"upd-{uuid.uuid4().hex[:8]}"

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(ticketctl, ["sources", *args])
        return result.exit_code, result.output

    async def options() -> dict[str, object]:
        from shared.db.engine import create_engine, session_factory

        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                row = await session.get(Source, name)
                assert row is not None
                return dict(row.options)
        finally:
            await engine.dispose()

    add = ["add", name, "--type", "generic", "--secret", "cli-secret-0007"]
    assert invoke(*add, "--option", "mapping.external_id=/id", "--option", "auth_header=X-Key")[0] == 0

    code, out = invoke(
        "update", name, "--option", "mapping.subject=/title", "--option", 'status_map={"New": "open"}'
    )
    assert code == 0 and "revision 2" in out, out
    assert asyncio.run(options()) == {
        "mapping": {"external_id": "/id", "subject": "/title"},
        "auth_header": "X-Key",
        "status_map": {"New": "open"},
    }
    code, out = invoke("update", name, "--unset", "status_map", "--unset", "mapping.subject")
    assert code == 0 and "revision 3" in out, out
    assert asyncio.run(options()) == {"mapping": {"external_id": "/id"}, "auth_header": "X-Key"}
    code, out = invoke("update", name, "--option", "auth_header=X-Key")
    assert code == 0 and "unchanged" in out and "revision 3" in out, out
    code, out = invoke("update", name, "--replace", "--option", "mapping.external_id=/ticket/id")
    assert code == 0 and "revision 4" in out, out
    assert asyncio.run(options()) == {"mapping": {"external_id": "/ticket/id"}}

    # Mistakes: one line each, nothing stored.
    for args, said in (
        (["--unset", "mapping.external_id"], "mapping: expected an object"),  # the adapter's check
        (["--unset", "nope"], "--unset nope: no such option"),
        (["--unset", "mapping.external_id.deeper"], "--unset mapping.external_id.deeper: no such option"),
    ):
        code, out = invoke("update", name, *args)
        assert code == 1 and said in out and len(out.strip().splitlines()) == 1, out
    code, out = invoke("update", f"{name}-missing", "--option", "auth_header=X")
    assert code == 1 and out.strip() == f"no source named '{name}-missing'", out
    for mistake in ([], ["--replace", "--unset", "mapping"]):
        assert invoke("update", name, *mistake)[0] == 2  # usage errors, as typer reports them
    assert asyncio.run(options()) == {"mapping": {"external_id": "/ticket/id"}}
    assert invoke("remove", name)[0] == 0


async def test_prune_removes_only_old_deliveries(sessions: async_sessionmaker[AsyncSession]) -> None:
    source = f"prune-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        session.add_all(
            [
                WebhookDelivery(source=source, delivery_id="old", received_at=utc_now() - timedelta(days=8)),
                WebhookDelivery(source=source, delivery_id="new", received_at=utc_now()),
            ]
        )
    assert await prune_deliveries(sessions, timedelta(days=7)) >= 1
    async with sessions() as session:
        left = (
            await session.scalars(select(WebhookDelivery.delivery_id).where(WebhookDelivery.source == source))
        ).all()
    assert left == ["new"]


async def test_broker_and_outbox_both_failing_is_503_and_forgets_the_delivery(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.intake.publisher as publisher_module

    name = f"native-{uuid.uuid4().hex[:8]}"
    await intake.add_source(name, "native", SECRET)
    headers = {"Content-Type": "application/json", "Authorization": basic("x", SECRET)}
    body = json.dumps({"external_id": "fragile"}).encode()
    publisher = intake.app.state.publisher

    async def broker_down(events):
        return dict.fromkeys(range(len(events)))

    def outbox_broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(publisher, "_send", broker_down)
    monkeypatch.setattr(publisher_module, "outbox_row", outbox_broken)
    failed = await intake.client.post(f"/v1/webhooks/{name}", content=body, headers=headers)
    assert failed.status_code == 503 and failed.headers["retry-after"]
    assert failed.headers["content-type"] == "application/problem+json"
    monkeypatch.undo()

    retried = await intake.client.post(f"/v1/webhooks/{name}", content=body, headers=headers)
    assert (
        retried.status_code == 202 and retried.json()["duplicate"] is False
    )  # the dedupe row was rolled back
    events = await read_topic(intake.settings.kafka_bootstrap_servers, intake.settings.topic_ticket_events, 1)
    assert [str(e.event_id) for e in events] == retried.json()["event_ids"]


async def test_a_deleted_source_is_refused_at_once_where_deleted_and_within_the_ttl_elsewhere(
    settings_kwargs: dict[str, object], database_url: str
) -> None:
    """The replica that served the DELETE forgets its cached source after the commit (as for every
    change through the API); another replica refuses the name once its cached copy expires."""
    ttl = 0.5
    replica = lambda: running_intake(  # noqa: E731
        database_url=database_url, intake_source_cache_ttl_s=ttl, **settings_kwargs
    )
    async with replica() as one, replica() as two:
        name = f"native-{uuid.uuid4().hex[:8]}"
        await one.add_source(name, "native", SECRET)

        def post(to: Intake, i: int) -> Awaitable[httpx.Response]:
            return to.client.post(
                f"/v1/webhooks/{name}",
                content=json.dumps({"external_id": f"d-{i}"}).encode(),
                headers={"Content-Type": "application/json", "Authorization": basic("x", SECRET)},
            )

        assert [(await post(one, 1)).status_code, (await post(two, 2)).status_code] == [202, 202]
        deleted = await one.client.delete(f"/v1/sources/{name}", headers={**one.admin, "If-Match": "*"})
        assert deleted.status_code == 204
        assert is_problem(await post(one, 3), 404)
        await asyncio.sleep(ttl + 0.1)
        assert is_problem(await post(two, 4), 404)


async def test_a_source_created_again_under_a_deleted_ones_name_continues_its_deliveries(
    intake: Intake,
) -> None:
    """The name is the identity: ticket keys (name:external_id), event ids and delivery ids derive
    from it, so a vendor's retry of a delivery the deleted source accepted is a duplicate for the
    new one too (README: use a new name for another system)."""
    name = f"generic-{uuid.uuid4().hex[:8]}"
    options = {"mapping": {"external_id": "/id"}, "delivery_header": "X-Request-Id"}
    headers = {"Content-Type": "application/json", "Authorization": basic("x", SECRET), "X-Request-Id": "7"}
    url = f"/v1/webhooks/{name}"
    await intake.add_source(name, "generic", SECRET, **options)
    first = await intake.client.post(url, content=b'{"id": "A"}', headers=headers)
    assert first.status_code == 202 and first.json()["ticket_keys"] == [f"{name}:A"]
    deleted = await intake.client.delete(f"/v1/sources/{name}", headers={**intake.admin, "If-Match": "*"})
    assert deleted.status_code == 204
    await intake.add_source(name, "generic", SECRET, **options)
    again = await intake.client.post(url, content=b'{"id": "A"}', headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["event_ids"] == first.json()["event_ids"]


async def test_a_key_given_twice_is_refused_naming_it(intake: Intake) -> None:
    """As on the router's admin API: the last of a repeated key is not silently what counts."""
    name = f"twice-{uuid.uuid4().hex[:8]}"
    body = f'{{"name": "{name}", "type": "github", "secret": "{SECRET}", "secret": "{NEW_SECRET}"}}'
    refused = await intake.client.post(
        "/v1/sources", content=body, headers={**intake.admin, "Content-Type": "application/json"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"field": "/secret", "message": "given twice in one object"}]
