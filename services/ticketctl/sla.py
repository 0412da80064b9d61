"""``ticketctl sla``: SLA policies and business calendars (versioned, validated like the API)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table
from rich.text import Text

from services.router.slas import service
from services.ticketctl.database import ROW_ID_MAX, in_transaction
from services.ticketctl.output import console, errors, fail, load_yaml
from shared.http.preconditions import Stale

sla_app = typer.Typer(help="SLA policies and business calendars.", no_args_is_help=True)
KINDS = {"policy": "policy", "calendar": "calendar"}
MAX_AUTHOR = 200  # SlaConfigVersion.author, AuditEntry.actor: an API key's name at most


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
    # A YAML comment, so the output is still the document: the version an edit of it starts from.
    print(f"# {kind} {name} version {row.version}; save an edit of it with:")
    print(f"# ticketctl sla apply {kind} <file> --base-version {row.version}")
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
    base_version: int | None = typer.Option(
        None,
        min=0,
        max=ROW_ID_MAX,
        help="Save only over this version (the one `sla show` printed; 0: a new name): "
        "a change saved since fails the command instead of being overwritten.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show the diff; save nothing."),
) -> None:
    """Validate and store a document as the next version of its ``name`` (or ``--name``)."""
    if kind not in KINDS:
        raise typer.BadParameter("use policy or calendar")
    # The version's author and the audit entry's actor, as an API key's name is (ApiKeyCreate):
    # a blank one audited a change by nobody, a longer one PostgreSQL refused with a driver error.
    if not re.fullmatch(r"\S(.*\S)?", author) or len(author) > MAX_AUTHOR:
        raise fail(f"--author: 1 to {MAX_AUTHOR} characters, without leading or trailing space")
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
    document_named = {**document, "name": saved_as}

    async def apply(session: Any) -> tuple[Any, bool]:
        """The version saved, or the live one when it already is this document (saved: False)."""
        live = await service.begin_change(session, kind, saved_as)  # the lock, then the live version
        service.check_base_version(kind, saved_as, live, base_version)
        checked = await service.checked_document(session, kind, saved_as, document_named)
        if live is not None and not live.deleted and live.document == checked:
            return live, False  # applying a file twice (a deploy re-run) adds no version
        return await service.save(session, kind, saved_as, checked, author, comment, previous=live), True

    async def preview(session: Any) -> str:
        live = await service.latest(session, kind, saved_as)
        service.check_base_version(kind, saved_as, live, base_version)
        checked = await service.checked_document(session, kind, saved_as, document_named)
        if live is None or live.deleted:
            return f"would create {kind} {saved_as} (version {service.version_of(live) + 1})"
        return (
            f"changes against the live version {live.version}:\n{service.render_diff(live.document, checked)}"
        )

    try:
        if dry_run:
            console.print(asyncio.run(_with_session(preview)))
            return
        row, saved = asyncio.run(_with_session(apply))
    except service.ConfigInvalid as exc:
        for error in exc.errors:
            errors.print(f"{error['field']}: {error['message']}", style="red", soft_wrap=True)
        raise typer.Exit(1) from None
    except Stale as exc:  # a version saved since --base-version, or by a concurrent writer
        raise fail(
            f"{exc.message}; nothing saved (`ticketctl sla show {kind} {saved_as}` shows it)"
        ) from None
    if not saved:
        console.print(f"{kind} {row.name} is version {row.version} already: no changes, nothing saved")
        return
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
