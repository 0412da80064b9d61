"""``ticketctl teams``: list, add and update teams through the router's team service (DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from services.router.teams import service
from services.router.teams.schemas import TeamCreate, TeamPatch
from services.ticketctl.rules import AUTHOR, run
from shared.http.problems import field_errors

teams_app = typer.Typer(help="Teams: list, add, update.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _invalid(exc: ValidationError) -> typer.Exit:
    for error in field_errors(exc.errors()):
        errors.print(f"[red]{error['field']}: {error['message']}[/]")
    return typer.Exit(1)


@teams_app.command("list")
def list_teams(all_: bool = typer.Option(False, "--all", help="Include inactive teams.")) -> None:
    """List teams."""
    rows = run(lambda session: service.list_teams(session, None if all_ else True))
    table = Table("name", "active", "capacity", "skills", "languages", "timezone", "calendar", "description")
    for row in rows:
        table.add_row(
            row.name,
            "yes" if row.active else "no",
            str(row.capacity),
            ", ".join(row.skills),
            ", ".join(row.languages),
            row.timezone,
            row.calendar or "",
            row.description,
        )
    console.print(table)


@teams_app.command("add")
def add(
    name: str = typer.Argument(..., help="Team name (letters, digits, - _ .)."),
    description: str = typer.Option("", help="What the team handles."),
    capacity: int = typer.Option(50, help="Open tickets the team can carry at once."),
    skill: list[str] = typer.Option([], "--skill", help="Repeat for several skills."),
    language: list[str] = typer.Option([], "--language", help="ISO 639 code; repeat for several."),
    timezone: str = typer.Option("UTC", help="IANA time zone."),
    calendar: str | None = typer.Option(None, help="Business-hours calendar name."),
) -> None:
    """Add a team."""
    try:
        data = TeamCreate(
            name=name,
            description=description,
            capacity=capacity,
            skills=skill,
            languages=language,
            timezone=timezone,
            calendar=calendar,
        )
    except ValidationError as exc:
        raise _invalid(exc) from exc
    run(lambda session: service.create_team(session, data, AUTHOR))
    console.print(f"added team {name}")


@teams_app.command("update")
def update(
    name: str = typer.Argument(..., help="The team to change."),
    description: str | None = typer.Option(None),
    capacity: int | None = typer.Option(None),
    skill: list[str] | None = typer.Option(None, "--skill", help="Replaces the skills; repeat for several."),
    language: list[str] | None = typer.Option(None, "--language", help="Replaces the languages."),
    timezone: str | None = typer.Option(None),
    calendar: str | None = typer.Option(None),
    active: bool | None = typer.Option(None, "--active/--inactive", help="Activate or deactivate."),
) -> None:
    """Change some of a team's fields (only the options given)."""
    given: dict[str, Any] = {
        "description": description,
        "capacity": capacity,
        "skills": skill or None,
        "languages": language or None,
        "timezone": timezone,
        "calendar": calendar,
        "active": active,
    }
    try:
        patch = TeamPatch(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise _invalid(exc) from exc
    row = run(lambda session: _update(session, name, patch))
    console.print(f"updated team {name} (revision {row.revision})")


async def _update(session: Any, name: str, patch: TeamPatch) -> Any:
    return await service.update_team(session, name, patch.changes(), expected=None, actor=AUTHOR)
