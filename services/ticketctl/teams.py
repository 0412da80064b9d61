"""``ticketctl teams``: list, add and update teams through the router's team service (DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from services.router.teams import service
from services.router.teams.schemas import TeamCreate, TeamPatch
from services.ticketctl.output import console, load_yaml
from services.ticketctl.output import errors as errors  # re-exported: tests set its width
from services.ticketctl.rules import AUTHOR, invalid, run

teams_app = typer.Typer(help="Teams: list, add, update.", no_args_is_help=True)


def _schedule(path: Path | None) -> Any:
    """The schedule document in a JSON or YAML file (JSON is YAML); ``None`` when not given."""
    if path is None:
        return None
    return load_yaml(path, "--schedule")  # a bad file is one line naming it, exit 1


SCHEDULE_HELP = "JSON/YAML file: timezone, tickets_per_agent, shifts [{name, hours, agents}], holidays."


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
    schedule: Path | None = typer.Option(None, help=SCHEDULE_HELP),
) -> None:
    """Add a team."""
    try:
        data = TeamCreate(
            schedule=_schedule(schedule),
            name=name,
            description=description,
            capacity=capacity,
            skills=skill,
            languages=language,
            timezone=timezone,
            calendar=calendar,
        )
    except ValidationError as exc:
        raise invalid(exc) from exc
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
    schedule: Path | None = typer.Option(None, help=SCHEDULE_HELP),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Drop the schedule (use capacity)."),
    no_calendar: bool = typer.Option(False, "--no-calendar", help="Drop the business-hours calendar."),
    no_skills: bool = typer.Option(False, "--no-skills", help="Clear the skills."),
    no_languages: bool = typer.Option(False, "--no-languages", help="Clear the languages."),
) -> None:
    """Change some of a team's fields (only the options given)."""
    for cleared, value, option, clear in (
        (no_calendar, calendar, "--calendar", "--no-calendar"),
        (no_skills, skill, "--skill", "--no-skills"),
        (no_languages, language, "--language", "--no-languages"),
        (no_schedule, schedule, "--schedule", "--no-schedule"),  # else the file was silently dropped
    ):
        if cleared and value:
            raise typer.BadParameter(f"give {option} or {clear}, not both", param_hint=clear)
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
        given = {k: v for k, v in given.items() if v is not None}
        if no_calendar:
            given["calendar"] = None
        if no_skills:
            given["skills"] = []
        if no_languages:
            given["languages"] = []
        if no_schedule or schedule is not None:
            given["schedule"] = None if no_schedule else _schedule(schedule)
        patch = TeamPatch(**given)
    except ValidationError as exc:
        raise invalid(exc) from exc
    row = run(lambda session: _update(session, name, patch))
    console.print(f"updated team {name} (revision {row.revision})")


async def _update(session: Any, name: str, patch: TeamPatch) -> Any:
    return await service.update_team(session, name, patch.changes(), expected=None, actor=AUTHOR)
