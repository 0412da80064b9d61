"""``ticketctl rules``: rules as code. Export the live set as YAML, apply a file (validated, with
a diff and a confirmation), list versions, roll back. Same service functions as the REST API,
directly on DATABASE_URL; every change is a new version with author "ticketctl"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.errors import AdminError, Invalid
from services.router.rules import RuleSet, RuleSetError, diff_rulesets, ruleset_from_yaml, ruleset_to_yaml
from services.router.rulesets import service
from services.router.rulesets.store import ruleset_of
from services.ticketctl.database import ROW_ID_MAX, read_modify_write, run_in_transaction
from services.ticketctl.output import console, errors, read_text, refuse_unstorable
from shared.http.preconditions import Stale
from shared.http.problems import field_errors

AUTHOR = "ticketctl"
LIVE = "the rule set"  # what `apply` and `rollback` replace, in their message when it changed meanwhile
rules_app = typer.Typer(help="Rules as code: export, apply, versions, rollback.", no_args_is_help=True)
T = TypeVar("T")


def run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One committed transaction on DATABASE_URL; service errors end the command with exit code 1."""

    try:
        return run_in_transaction(work)
    except AdminError as exc:
        report(exc)
        raise typer.Exit(1) from exc
    except Stale as exc:  # another writer changed it first; the message names the current state
        errors.print(f"{exc.message}", style="red")
        raise typer.Exit(1) from exc


def report(exc: AdminError) -> None:
    # An Invalid's message is its field errors joined: they are listed one per line instead.
    # Other errors (a conflict) say what happened, then which field it concerns.
    header = "not valid:" if isinstance(exc, Invalid) and exc.errors else exc.message
    errors.print(f"{header}", style="red")
    for error in exc.errors:
        errors.print(f"  {error['field']}: {error['message']}")


def invalid(exc: ValidationError) -> typer.Exit:
    """Command-line input the service's schema refuses: each field's error, then exit code 1."""
    for error in field_errors(exc.errors()):
        errors.print(f"{error['field']}: {error['message']}", style="red")
    return typer.Exit(1)


@rules_app.command("export")
def export() -> None:
    """Print the live rule set as YAML (``ticketctl rules export > rules.yaml``)."""
    live = run(service.live)
    print(f"# rule set version {live.version}; apply changes with: ticketctl rules apply <file>")
    print(ruleset_to_yaml(live.model_copy(update={"version": None})), end="")


def _load(path: Path) -> RuleSet:
    text = read_text(path)  # unreadable or not UTF-8: one line naming the file, exit 1
    try:
        draft = ruleset_from_yaml(text)
    except RuleSetError as exc:
        errors.print(f"{path} is not a valid rule set:", style="red")
        for problem in exc.problems:
            errors.print(f"  {problem.path or '(document)'}: {problem.message}")
        raise typer.Exit(1) from exc
    refuse_unstorable(path, draft.model_dump(mode="json", by_alias=True, exclude_none=True))
    return draft


@rules_app.command("apply")
def apply(
    path: Path = typer.Argument(..., help="YAML (or JSON) rule set file."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show the diff; save nothing."),
    comment: str = typer.Option("", help="Why; stored with the version."),
) -> None:
    """Validate a file, show its diff against the live set, confirm, save a new version."""
    draft = _load(path)

    async def preview(session: AsyncSession) -> tuple[RuleSet, list[dict[str, str]]]:
        return await service.live(session), await service.check_references(session, draft)

    live, problems = run(preview)
    if problems:
        report(AdminError("invalid", problems))
        raise typer.Exit(1)
    change = diff_rulesets(live, draft)
    console.print(f"changes against the live version {live.version}:")
    console.print(change.render(), markup=False)
    if change.empty or dry_run:
        return
    if not yes and not typer.confirm(f"save as version {(live.version or 0) + 1}?"):
        raise typer.Exit(1)

    async def save(session: AsyncSession) -> RuleSet:
        # Based on the version the diff was shown against: a change made meanwhile fails cleanly.
        edit = service.Edit(live.version, AUTHOR, comment or f"applied {path.name}")
        return await service.replace_ruleset(session, draft, edit)

    console.print(f"saved version {run(read_modify_write(LIVE, save)).version}")


@rules_app.command("versions")
def versions(limit: int = typer.Option(20, min=1, max=1000, help="How many, newest first.")) -> None:
    """List rule set versions."""
    rows = run(lambda session: service.list_versions(session, limit))
    table = Table("version", "author", "created", "comment", "diff")
    for row in rows:
        table.add_row(
            str(row.version), row.author, row.created_at.isoformat(timespec="seconds"), row.comment, row.diff
        )
    console.print(table)


@rules_app.command("rollback")
def rollback(
    version: int = typer.Argument(
        ..., min=1, max=ROW_ID_MAX, help="The version to restore (as a new version)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Save a new version equal to VERSION."""

    async def preview(session: AsyncSession) -> tuple[RuleSet, RuleSet]:
        return await service.live(session), ruleset_of(await service.get_version(session, version))

    live, target = run(preview)
    console.print(diff_rulesets(live, target).render(), markup=False)
    if not yes and not typer.confirm(f"roll back to version {version}?"):
        raise typer.Exit(1)
    edit = service.Edit(live.version, AUTHOR)  # the version the diff was shown against, as for apply
    saved = run(read_modify_write(LIVE, lambda session: service.rollback(session, version, edit)))
    console.print(f"saved version {saved.version} (equal to version {version})")
