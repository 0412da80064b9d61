"""``ticketctl writeback``: a connector target added with its options checked like the API's,
listed without its secret, its failed deliveries listed and queued again, and removed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.ticketctl import writeback as writeback_cli
from services.ticketctl.database import in_transaction
from services.ticketctl.main import app
from shared.db.audit import list_entries
from shared.events import utc_now
from tests.integration.router_sla.helpers import add_teams

TOKEN = "zd-api-token-0123456789"


def failed_delivery(database_url: str, target: str, ticket_key: str, error: str, created_at: datetime) -> int:
    """The id of a delivery to ``target`` that failed for good (8 attempts) with ``error``."""

    async def work(session: AsyncSession) -> int:
        target_id = await session.scalar(select(WritebackTarget.id).where(WritebackTarget.name == target))
        assert target_id is not None
        delivery = WritebackDelivery(
            target_id=target_id,
            event_id=str(uuid.uuid4()),
            kind="assignment",
            ticket_key=ticket_key,
            body="{}",
            status="failed",
            attempts=8,
            next_attempt_at=utc_now(),
            last_error=error,
            created_at=created_at,
        )
        session.add(delivery)
        await session.flush()
        return delivery.id

    return asyncio.run(in_transaction(work, database_url))


def test_add_list_retry_and_remove(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(writeback_cli.console, "width", 300)
    cli, name = CliRunner(), f"zendesk-{uuid.uuid4().hex[:8]}"
    add = ["writeback", "add", name, "--source", "zendesk-main", "--connector", "zendesk"]
    add += ["--url", "https://acme.zendesk.com", "--secret", TOKEN, "--option", "groups.billing=360001"]

    missing = cli.invoke(app, add)
    assert missing.exit_code == 1 and "username: Field required" in missing.output
    # groups map our teams: one that does not exist is refused, naming the option.
    unknown = cli.invoke(app, [*add, "--option", "username=bot@acme.com", "--option", "groups.nosuchteam=9"])
    assert unknown.exit_code == 1 and "/options/groups/nosuchteam: unknown team" in unknown.output, (
        unknown.output
    )
    asyncio.run(in_transaction(lambda session: add_teams(session, "billing"), database_url))

    added = cli.invoke(app, [*add, "--option", "username=bot@acme.com", "--kind", "assignment"])
    assert added.exit_code == 0 and f"added {name}" in added.output, added.output
    listed = cli.invoke(app, ["writeback", "list"])
    assert listed.exit_code == 0 and name in listed.output and "zendesk" in listed.output
    assert '"billing": 360001' in listed.output and TOKEN not in listed.output

    delivery_id = failed_delivery(database_url, name, "zendesk-main:1", "HTTP 401", utc_now())
    failed = cli.invoke(app, ["writeback", "deliveries", "--status", "failed"])
    assert failed.exit_code == 0 and "HTTP 401" in failed.output and str(delivery_id) in failed.output
    assert cli.invoke(app, ["writeback", "deliveries", "--status", "lost"]).exit_code == 2
    retried = cli.invoke(app, ["writeback", "retry", str(delivery_id)])
    assert retried.exit_code == 0, retried.output
    again = cli.invoke(app, ["writeback", "retry", str(delivery_id)])
    assert again.exit_code == 1 and "only failed ones are retried" in again.output

    assert cli.invoke(app, ["writeback", "remove", name]).exit_code == 0

    async def left() -> WritebackDelivery | None:
        async def work(session) -> WritebackDelivery | None:
            return await session.get(WritebackDelivery, delivery_id)

        return await in_transaction(work, database_url)

    assert asyncio.run(left()) is None  # its queue went with it
    gone = cli.invoke(app, ["writeback", "remove", name])
    assert gone.exit_code == 1 and f"no write-back target named '{name}'" in gone.output

    async def audited() -> list[str]:
        async def work(session) -> list[str]:
            entries = await list_entries(session, entity="writeback_target", limit=1000)
            return [e.action for e in entries if e.detail.get("target", {}).get("name") == name]

        return await in_transaction(work, database_url)

    assert sorted(asyncio.run(audited())) == ["writeback_target.create", "writeback_target.delete"]


def test_numeric_ids_are_taken_as_the_connector_wants_them(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Intercom's admin and team ids are numeric strings; Zendesk's group ids are numbers. The
    # CLI read every digit string as a JSON number, so `--option admin_id=814860` was refused as
    # "Input should be a valid string" for Intercom (the API's JSON says which it is).
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(writeback_cli.console, "width", 300)
    cli, name = CliRunner(), f"intercom-{uuid.uuid4().hex[:8]}"
    add = ["writeback", "add", name, "--source", "intercom-main", "--connector", "intercom"]
    add += ["--url", "https://api.intercom.io", "--secret", TOKEN]
    asyncio.run(in_transaction(lambda session: add_teams(session, "billing"), database_url))
    added = cli.invoke(app, [*add, "--option", "admin_id=814860", "--option", "groups.billing=5017691"])
    assert added.exit_code == 0 and f"added {name}" in added.output, added.output
    listed = cli.invoke(app, ["writeback", "list"])
    assert '"admin_id": "814860"' in listed.output and '"billing": "5017691"' in listed.output, listed.output
    assert cli.invoke(app, ["writeback", "remove", name]).exit_code == 0


def test_disable_and_enable_a_target(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``writeback disable|enable NAME``: the API's PUT with only ``enabled`` changed (the secret and
    every other field kept), audited; a name that is not a target is one line."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(writeback_cli.console, "width", 300)
    cli, name = CliRunner(), f"hook-{uuid.uuid4().hex[:8]}"
    add = ["writeback", "add", name, "--source", "github-main", "--url", "https://hooks.example.com/t"]
    added = cli.invoke(app, [*add, "--secret", TOKEN, "--kind", "assignment"])
    assert added.exit_code == 0, added.output

    async def stored() -> tuple[bool, str, list[str], int]:
        async def work(session) -> tuple[bool, str, list[str], int]:
            row = await session.scalar(select(WritebackTarget).where(WritebackTarget.name == name))
            assert row is not None
            return row.enabled, row.secret, row.event_kinds, row.revision

        return await in_transaction(work, database_url)

    disabled = cli.invoke(app, ["writeback", "disable", name])
    assert disabled.exit_code == 0 and f"{name} disabled (revision 2)" in disabled.output, disabled.output
    assert asyncio.run(stored()) == (False, TOKEN, ["assignment"], 2)
    again = cli.invoke(app, ["writeback", "disable", name])
    assert again.exit_code == 0 and f"{name} was disabled already" in again.output, again.output
    listed = cli.invoke(app, ["writeback", "list"])
    assert [line for line in listed.output.splitlines() if name in line and " no " in line], listed.output
    enabled = cli.invoke(app, ["writeback", "enable", name])
    assert enabled.exit_code == 0 and f"{name} enabled (revision 3)" in enabled.output, enabled.output
    assert asyncio.run(stored()) == (True, TOKEN, ["assignment"], 3)

    for command in ("enable", "disable"):
        missing = cli.invoke(app, ["writeback", command, f"{name}-x"])
        assert missing.exit_code == 1, missing.output
        assert missing.output.strip() == f"no write-back target named '{name}-x'", missing.output

    async def audited() -> list[object]:
        async def work(session) -> list[object]:
            row = await session.scalar(select(WritebackTarget).where(WritebackTarget.name == name))
            entries = await list_entries(session, entity="writeback_target", entity_id=str(row.id), limit=100)
            return [e.detail["changes"] for e in entries if e.action == "writeback_target.update"]

        return await in_transaction(work, database_url)

    changes = asyncio.run(audited())
    assert {"enabled": {"old": True, "new": False}} in changes, changes
    assert {"enabled": {"old": False, "new": True}} in changes, changes
    assert cli.invoke(app, ["writeback", "remove", name]).exit_code == 0


def test_list_shows_why_a_stored_target_is_not_sent_to(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helpdesk target stored with an http:// address (before saving refused it) is refused at
    send time; ``writeback list`` shows the reason the API's ``problem`` gives, not an empty cell."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(writeback_cli.console, "width", 400)
    cli, name = CliRunner(), f"zendesk-{uuid.uuid4().hex[:8]}"
    add = ["writeback", "add", name, "--source", "zendesk-main", "--connector", "zendesk"]
    add += ["--url", "https://acme.zendesk.com", "--secret", TOKEN, "--option", "username=bot@acme.com"]
    assert cli.invoke(app, add).exit_code == 0
    listed = cli.invoke(app, ["writeback", "list"])
    assert "not sent" not in listed.output, listed.output

    async def downgrade() -> None:
        async def work(session) -> None:
            row = await session.scalar(select(WritebackTarget).where(WritebackTarget.name == name))
            assert row is not None
            row.url = "http://acme.zendesk.com"

        await in_transaction(work, database_url)

    asyncio.run(downgrade())
    listed = cli.invoke(app, ["writeback", "list"])
    line = [line for line in listed.output.splitlines() if name in line]
    assert line and "not sent: this zendesk target's address is not https" in line[0], listed.output
    assert TOKEN not in listed.output
    assert cli.invoke(app, ["writeback", "remove", name]).exit_code == 0


def test_deliveries_are_listed_a_page_at_a_time(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``writeback deliveries`` showed the newest ``--limit`` and nothing past them: ``--before ID``
    lists those older than ID, and a full page ends with the option that shows the next one."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(writeback_cli.console, "width", 300)
    cli = CliRunner()

    async def failed_three() -> list[int]:
        async def work(session) -> list[int]:
            rows = [
                WritebackDelivery(
                    target_id=0,  # no such target: the sender never claims them
                    event_id=str(uuid.uuid4()),
                    kind="assignment",
                    ticket_key=f"api:page-{n}",
                    body="{}",
                    status="failed",
                    attempts=8,
                    last_error=f"HTTP 50{n}",
                )
                for n in range(3)
            ]
            session.add_all(rows)
            await session.flush()
            return [row.id for row in rows]

        return await in_transaction(work, database_url)

    async def remove() -> None:
        async def work(session) -> None:
            for delivery_id in ids:
                await session.delete(await session.get(WritebackDelivery, delivery_id))

        await in_transaction(work, database_url)

    ids = asyncio.run(failed_three())
    try:
        listing = ["writeback", "deliveries", "--status", "failed", "--limit", "2"]
        first = cli.invoke(app, [*listing, "--before", str(ids[2] + 1)])
        assert first.exit_code == 0, first.output
        assert "HTTP 502" in first.output and "HTTP 501" in first.output and "HTTP 500" not in first.output
        assert f"--before {ids[1]}" in first.output, first.output  # the next page's option
        second = cli.invoke(app, [*listing, "--before", str(ids[1])])
        assert second.exit_code == 0 and "HTTP 500" in second.output and "HTTP 501" not in second.output
        assert cli.invoke(app, [*listing, "--before", "0"]).exit_code == 2
        everything = cli.invoke(app, ["writeback", "deliveries", "--limit", "1000"])
        assert everything.exit_code == 0 and "--before" not in everything.output  # a short page
    finally:
        asyncio.run(remove())


def test_retry_refuses_a_delivery_older_than_the_retention_as_the_api_does(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API refuses to retry a delivery older than ROUTER_DEDUP_RETENTION_DAYS (409: a newer
    delivery of its ticket that retrying would undo may have been pruned); `writeback retry` called
    the same service without the retention and re-queued it."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("ROUTER_DEDUP_RETENTION_DAYS", raising=False)
    cli, name = CliRunner(), f"hook-{uuid.uuid4().hex[:8]}"
    add = ["writeback", "add", name, "--source", "zendesk-main", "--url", "https://hooks.example/x"]
    assert cli.invoke(app, [*add, "--secret", "s" * 32]).exit_code == 0

    old = utc_now() - timedelta(days=31)
    delivery_id = failed_delivery(database_url, name, "zendesk-main:7", "HTTP 500", old)
    refused = cli.invoke(app, ["writeback", "retry", str(delivery_id)])
    assert refused.exit_code == 1, refused.output
    assert "older than the 30-day retention" in refused.output, refused.output
    monkeypatch.setenv("ROUTER_DEDUP_RETENTION_DAYS", "60")  # the routers keep it longer: retried
    retried = cli.invoke(app, ["writeback", "retry", str(delivery_id)])
    assert retried.exit_code == 0, retried.output
    assert cli.invoke(app, ["writeback", "remove", name]).exit_code == 0
