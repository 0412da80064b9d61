"""``ticketctl``: admin and ops commands (keys, migrations, the dev stack, and more)."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.table import Column, Table

from services.router.apikeys import service as key_service
from services.router.apikeys.schemas import ApiKeyCreate
from services.ticketctl.database import DatabaseUrlError, checked_url
from services.ticketctl.output import console, errors
from services.ticketctl.rules import AUTHOR, invalid, run
from shared.auth import Role

app = typer.Typer(help="Admin and ops commands for the ticket router.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
dev_app = typer.Typer(help="The local development stack.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(dev_app, name="dev")
app.add_typer(__import__("services.ticketctl.sla", fromlist=["sla_app"]).sla_app, name="sla")
app.add_typer(__import__("services.ticketctl.sources").ticketctl.sources.sources_app, name="sources")
app.add_typer(__import__("services.ticketctl.rules", fromlist=["_"]).rules_app, name="rules")
app.add_typer(__import__("services.ticketctl.teams", fromlist=["_"]).teams_app, name="teams")
app.add_typer(__import__("services.ticketctl.classifier", fromlist=["_"]).classifier_app, name="classifier")
app.add_typer(__import__("services.ticketctl.writeback", fromlist=["_"]).writeback_app, name="writeback")


@app.command()
def migrate(revision: str = typer.Argument("heads", help="Target revision.")) -> None:
    """Apply the database migrations (DATABASE_URL). A schema a newer version migrated is left as
    it is: this version runs on it (rolling back is deploying the previous image)."""
    import asyncio

    from shared.db.migrate import current_heads, unknown_revisions, upgrade

    url = checked_url()
    if revision in ("head", "heads") and (newer := unknown_revisions(url, asyncio.run(current_heads(url)))):
        console.print(
            f"database schema is at {', '.join(sorted(newer))}, newer than this version's migrations: "
            "left as it is",
            soft_wrap=True,
        )
        return
    upgrade(url, revision)
    console.print("database is up to date")


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="Who or what uses the key."),
    role: Role = typer.Option(Role.VIEWER, help="admin, editor, viewer or intake."),
) -> None:
    """Create a key; its plain text is printed once and never stored."""

    # Checked as the API checks it (the same service: audited as "ticketctl").
    try:
        data = ApiKeyCreate(name=name, role=role)
    except ValidationError as exc:
        raise invalid(exc) from exc
    row, plain = run(lambda session: key_service.create_key(session, data, AUTHOR))
    console.print(f"id: {row.id}  role: {role.value}")
    print(plain)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""

    table = Table("name", "role", "created", "revoked")
    # Whole on any terminal: `keys revoke` takes the id as listed (the other columns wrap instead).
    table.columns.insert(0, Column("id", no_wrap=True, min_width=36))
    for row in run(key_service.list_keys):
        table.add_row(
            row.id,
            row.name,
            row.role,
            row.created_at.isoformat(timespec="seconds"),
            row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (see keys list).")) -> None:
    """Revoke a key; services stop accepting it within seconds. Not the last active admin key."""

    revoked = run(lambda session: key_service.revoke_key(session, key_id, AUTHOR))  # 1: unknown, last admin
    console.print(f"revoked {key_id}" if revoked else f"{key_id} was revoked already")


@dev_app.command("run")
def dev_run(
    embedded_broker: bool = typer.Option(True, help="Start the embedded tansu broker (else use KAFKA_*)."),
) -> None:
    """Start broker, migrations, demo seed and the three services; Ctrl-C stops all."""
    from services.ticketctl.dev import run

    raise typer.Exit(run(embedded_broker))


def not_utf8_argument() -> str | None:
    """Which command-line argument is not UTF-8 text, and its first such byte."""
    for position, argument in enumerate(sys.argv[1:], start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError as exc:
            char = ord(argument[exc.start])
            what = f" (byte 0x{char - 0xDC00:02x})" if 0xDC80 <= char <= 0xDCFF else ""
            return f"argument {position} is not UTF-8 text{what}; type it in a UTF-8 terminal"
    return None


def main() -> None:
    """The ``ticketctl`` command: a database that cannot be reached or a migration that cannot be
    found is one line on stderr and exit status 1, not a page of traceback."""
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from shared.logging import scrub

    try:
        app()
    except DatabaseUrlError as exc:  # its message names the mistake and the fix, not the URL
        errors.print(f"ticketctl: DATABASE_URL: {exc}", style="red", soft_wrap=True)
        raise SystemExit(1) from None
    except UnicodeEncodeError as exc:
        # A name typed in a Latin-1 terminal reaches Python as a lone surrogate, which the database
        # drivers cannot encode (a file name may hold one: it is only refused where it is stored).
        errors.print(f"ticketctl: {not_utf8_argument() or exc.reason}", style="red", soft_wrap=True)
        raise SystemExit(1) from None
    except ValidationError as exc:
        if not exc.title.endswith("Settings"):  # shared/settings.py: a variable the environment set
            raise
        # Each variable and what is wrong with it; never its value, which may be a secret.
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            errors.print(f"ticketctl: {variable}: {message}", style="red", soft_wrap=True)
        raise SystemExit(1) from None
    except (CommandError, ArgumentError, DBAPIError, OSError) as exc:
        if "surrogates not allowed" in str(exc) and (argument := not_utf8_argument()):
            errors.print(f"ticketctl: {argument}", style="red", soft_wrap=True)  # asyncpg's, as above
            raise SystemExit(1) from None
        # scrub: SQLAlchemy's URL parse error quotes the whole URL, password included. Scrubbed
        # before cutting, which could leave a password without the "@" the scrubber looks for.
        line = scrub(str(exc).splitlines()[0])[:300]
        errors.print(f"ticketctl: {type(exc).__name__}: {line}", style="red", soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
