"""``ticketctl sla``: SLA policies and business calendars (versioned, validated like the API)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table
from rich.text import Text

from services.router.slas import service
from services.ticketctl.database import in_transaction
from services.ticketctl.output import console, errors, fail, load_yaml
from shared.http.preconditions import Stale

sla_app = typer.Typer(help="SLA policies and business calendars.", no_args_is_help=True)
KINDS = {"policy": "policy", "calendar": "calendar"}


async def _with_session(work: Any) -> Any:
    return await in_transaction(work)


@sla_app.command("list")
def sla_list(kind: str = typer.Argument(..., help="policy or calendar")) -> None:
    """List the live policies or calendars (newest version of each)."""
    if kind not in KINDS:
        raise typer.BadParameter("use policy or calendar")
    rows = asyncio.run(_with_session(lambda s: service.live_rows(s, kind)))
    table = Table("name", "version", "author", "changed")
    for row in rows:
        table.add_row(row.name, str(row.version), row.author, row.created_at.isoformat(timespec="seconds"))
    console.print(table)


@sla_app.command("show")
def sla_show(
    kind: str = typer.Argument(..., help="policy or calendar"), name: str = typer.Argument(...)
) -> None:
    """Print the live document of one policy or calendar as YAML."""
    if kind not in KINDS:
        raise typer.BadParameter("use policy or calendar")
    row = asyncio.run(_with_session(lambda s: service.latest(s, kind, name)))
    if row is None or row.deleted:
        raise fail(f"no {kind} {name!r}")
    print(yaml.safe_dump(row.document, sort_keys=False), end="")


@sla_app.command("apply")
def sla_apply(
    kind: str = typer.Argument(..., help="policy or calendar"),
    path: Path = typer.Argument(..., exists=True, readable=True, help="YAML or JSON document"),
    author: str = typer.Option("ticketctl", help="Recorded as the author of the version."),
    comment: str = typer.Option("", help="Change comment."),
    name: str | None = typer.Option(
        None, help="Save it under this name (the file's `name:` may be left out; if given, it must be this)."
    ),
) -> None:
    """Validate and store a document as the next version of its ``name`` (or ``--name``)."""
    if kind not in KINDS:
        raise typer.BadParameter("use policy or calendar")
    document = load_yaml(path)  # unreadable, not UTF-8 or not YAML: one line naming the file, exit 1
    if not isinstance(document, dict):
        raise fail(f"{path}: expected a {kind} document (a mapping of fields)")
    if name is not None and "name" in document and document["name"] != name:
        # One file applied under several names leaves `name:` out; one naming another is a mistake.
        raise fail(f"/name: the file names {document['name']!r}, --name says {name!r}; give one, or the same")
    name = name if name is not None else document.get("name")
    if not isinstance(name, str):
        raise fail("/name: the document needs a name (or give --name)")
    saved_as: str = name

    async def apply(session: Any) -> Any:
        document_named = {**document, "name": saved_as}
        return await service.save_checked(session, kind, saved_as, document_named, author, comment)

    try:
        row = asyncio.run(_with_session(apply))
    except service.ConfigInvalid as exc:
        for error in exc.errors:
            errors.print(f"{error['field']}: {error['message']}", style="red", soft_wrap=True)
        raise typer.Exit(1) from None
    except Stale as exc:  # another writer saved the same version first
        raise fail(exc.message) from None
    console.print(f"{kind} {row.name} is now version {row.version}\n{row.diff}")


@sla_app.command("history")
def sla_history(
    kind: str = typer.Argument(..., help="policy or calendar"), name: str = typer.Argument(...)
) -> None:
    """Every version with author, comment and diff."""
    if kind not in KINDS:
        raise typer.BadParameter("use policy or calendar")
    rows = asyncio.run(_with_session(lambda s: service.history(s, kind, name)))
    if not rows:
        raise fail(f"no {kind} {name!r}")
    for row in rows:
        flag = " (deleted)" if row.deleted else ""
        console.print(
            Text.assemble(
                (f"v{row.version}", "bold"),
                f"{flag} {row.created_at.isoformat(timespec='seconds')} {row.author}"
                f" {json.dumps(row.comment) if row.comment else ''}\n{row.diff}",
            )
        )
