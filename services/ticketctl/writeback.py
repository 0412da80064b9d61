"""``ticketctl writeback``: write-back targets (a signed webhook or a helpdesk's API) and their
delivery queue, through the router's service functions, audited under the CLI's author.

Changes pass ``expected=None`` (the CLI holds no ETag): each command reads the target and writes
it in one transaction, and the write is checked against the revision read (``WHERE revision =
<read>``), so another admin's change in between fails the command (see ``read_modify_write``).
"""

from __future__ import annotations

import json
from datetime import timedelta

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.errors import NotFound
from services.router.writeback import service
from services.router.writeback.models import WritebackTarget
from services.router.writeback.schemas import DeliveryOut, TargetIn, TargetOut
from services.ticketctl.database import ROW_ID_MAX, read_modify_write
from services.ticketctl.output import console
from services.ticketctl.rules import AUTHOR, invalid, run
from services.ticketctl.sources import parse_options, validated
from shared.settings import RouterSettings

writeback_app = typer.Typer(
    help="Write-back targets: add, list, enable, disable, remove; deliveries, retry.", no_args_is_help=True
)


async def _by_name(session: AsyncSession, name: str) -> WritebackTarget:
    row = await session.scalar(select(WritebackTarget).where(WritebackTarget.name == name))
    if row is None:
        raise NotFound(f"no write-back target named {name!r}")
    return row


@writeback_app.command("add")
def add(
    name: str = typer.Argument(..., help="The target's name (what `notify` actions refer to)."),
    source: str = typer.Option(..., help="The source whose tickets' decisions it receives."),
    connector: str = typer.Option(
        "webhook", help="webhook, zendesk, freshdesk, zammad, jira, github or intercom."
    ),
    url: str = typer.Option(..., help="The webhook's URL, or the helpdesk's address."),
    secret: str = typer.Option(
        ..., help="The webhook's HMAC key, or the helpdesk's API token.", prompt=True, hide_input=True
    ),
    option: list[str] = typer.Option(
        [], "--option", help="Connector option key=value (repeatable; groups.billing=360001 nests)."
    ),
    kind: list[str] = typer.Option([], "--kind", help="Event kinds to send (repeatable; none: all)."),
    disabled: bool = typer.Option(False, help="Create it disabled."),
) -> None:
    """Add a write-back target."""
    data = validated(
        TargetIn,
        name=name,
        source=source,
        connector=connector,
        url=url,
        secret=secret,
        # Digits as text: the connector's schema stores an int where it wants one (Zendesk's group
        # ids) and a string where it wants that (Intercom's admin and team ids).
        options=parse_options(option, numbers=False),
        event_kinds=kind,
        enabled=not disabled,
    )

    async def create(session: AsyncSession) -> TargetOut:
        return service.to_out(await service.create_target(session, data, AUTHOR))

    target = run(create)
    console.print(f"added {target.name} (#{target.id}, {target.connector} for {target.source})")


@writeback_app.command("list")
def list_() -> None:
    """List the targets (never their secrets)."""

    async def rows(session: AsyncSession) -> list[TargetOut]:
        return [service.to_out(row) for row in await service.list_targets(session)]

    table = Table("id", "name", "source", "connector", "url", "enabled", "kinds", "options", "problem")
    for target in run(rows):
        table.add_row(
            str(target.id),
            target.name,
            target.source,
            target.connector,
            target.url,
            "yes" if target.enabled else "no",
            ", ".join(target.event_kinds) or "all",
            json.dumps(target.options, sort_keys=True),
            target.problem or "",
        )
    console.print(table)


def _set_enabled(name: str, enabled: bool) -> None:
    """The API's PUT (it has no PATCH) with every field as stored but ``enabled``: the secret is kept,
    and the fields are checked as any save checks them."""

    async def change(session: AsyncSession) -> tuple[TargetOut, bool]:
        row = await _by_name(session, name)
        fields = {key: getattr(row, key) for key in service.AUDITED}
        try:
            data = TargetIn(**{**fields, "secret": row.secret, "enabled": enabled})
        except ValidationError as exc:  # saved before a check it now fails: `writeback add` it anew
            raise invalid(exc) from exc
        seen = row.revision
        row = await service.update_target(session, row.id, data, expected=None, actor=AUTHOR)
        return service.to_out(row), row.revision != seen

    target, changed = run(read_modify_write(f"write-back target {name!r}", change))
    state = "enabled" if enabled else "disabled"
    if changed:
        console.print(f"{target.name} {state} (revision {target.revision})")
    else:
        console.print(f"{target.name} was {state} already")


@writeback_app.command("enable")
def enable(name: str = typer.Argument(..., help="The target's name.")) -> None:
    """Send the target's deliveries again, those queued while it was disabled included."""
    _set_enabled(name, True)


@writeback_app.command("disable")
def disable(name: str = typer.Argument(..., help="The target's name.")) -> None:
    """Stop sending to the target; its deliveries are still queued and wait until it is enabled."""
    _set_enabled(name, False)


@writeback_app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Delete a target (its queued deliveries are no longer sent)."""

    async def delete(session: AsyncSession) -> None:
        row = await _by_name(session, name)
        await service.delete_target(session, row.id, expected=None, actor=AUTHOR)

    run(read_modify_write(f"write-back target {name!r}", delete))
    console.print(f"removed {name}")


@writeback_app.command("deliveries")
def deliveries(
    status: str | None = typer.Option(None, help="pending, delivered or failed (default: all)."),
    limit: int = typer.Option(50, min=1, max=1000),
    before: int | None = typer.Option(
        None, min=1, max=ROW_ID_MAX, help="Only deliveries older than this id (the next page's cursor)."
    ),
) -> None:
    """The newest deliveries, with the last error of each, a page at a time."""
    if status not in (None, "pending", "delivered", "failed"):
        raise typer.BadParameter("pending, delivered or failed", param_hint="--status")

    async def rows(session: AsyncSession) -> list[DeliveryOut]:
        found = await service.list_deliveries(session, status, limit, before)
        return [DeliveryOut.model_validate(row) for row in found]

    page = run(rows)
    table = Table("id", "target", "ticket", "kind", "status", "attempts", "last error")
    for row in page:
        table.add_row(
            str(row.id), str(row.target_id), row.ticket_key, row.kind, row.status, str(row.attempts),
            row.last_error or "",
        )  # fmt: skip
    console.print(table)
    if len(page) == limit:  # maybe more, as the API's Link header says
        console.print(f"older deliveries: the same command with --before {page[-1].id}")


@writeback_app.command("retry")
def retry(
    delivery_id: int = typer.Argument(..., min=1, max=ROW_ID_MAX, help="A failed delivery's id."),
) -> None:
    """Queue a failed delivery again, with fresh attempts (not one older than
    ROUTER_DEDUP_RETENTION_DAYS, as over the API: a newer delivery it would undo may be pruned)."""
    retention = timedelta(days=RouterSettings().router_dedup_retention_days)
    run(lambda session: service.retry_delivery(session, delivery_id, AUTHOR, retention))
    console.print(f"delivery {delivery_id} queued again")
