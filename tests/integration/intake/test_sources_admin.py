"""The sources admin API, the ticketctl commands, the source cache and delivery pruning."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from services.intake.deliveries import prune_deliveries
from services.intake.models import Source, WebhookDelivery
from services.intake.sources import service
from services.intake.sources.schemas import SourceUpdate
from services.intake.sources.service import fingerprint
from services.ticketctl.main import app as ticketctl
from shared.db.audit import list_entries
from shared.events import utc_now
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
        f"/v1/sources/{name}", headers=intake.admin, json={"enabled": False, "options": {}}
    )
    assert patched.json()["enabled"] is False and patched.json()["options"] == {}
    rotated = await intake.client.post(
        f"/v1/sources/{name}/rotate", headers=intake.admin, json={"secret": NEW_SECRET}
    )
    assert rotated.status_code == 200 and rotated.json()["secret_count"] == 2

    deleted = await intake.client.delete(f"/v1/sources/{name}", headers=intake.admin)
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
    logged = json.dumps([e.detail for e in entries])
    assert SECRET not in logged and NEW_SECRET not in logged


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


async def test_admin_role_required(intake: Intake) -> None:
    assert (await intake.client.get("/v1/sources")).status_code == 401
    assert (await intake.client.get("/v1/sources", headers=intake.intake)).status_code == 403


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
            await service.update_source(session, name, SourceUpdate(enabled=False), "tests")
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
        "cli-secret-0001",
        "--option",
        "mapping.external_id=/id",
        "--option",
        "delivery_header=X-Request-Id",
    )
    assert "cli-secret-0001" not in added and "1 secret(s)" in added
    assert name in run("list")
    assert "2 secret(s)" in run("rotate", name, "--secret", "cli-secret-0002")
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
    assert bad.exit_code == 1 and "mapping.external_id" in bad.output
    run("remove", name)
    assert runner.invoke(ticketctl, ["sources", "remove", name]).exit_code == 1

    async def stored() -> Source | None:
        from shared.db.engine import create_engine, session_factory

        engine = create_engine(database_url)
        try:
            async with session_factory(engine)() as session:
                return await session.get(Source, name)
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) is None


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
