"""``ticketctl sources``: manage webhook sources in the database, through the intake's service functions.

Changes pass ``expected=None`` (the CLI holds no ETag): each command reads the source and writes
it in one transaction, and the write is checked against the revision read (``WHERE revision =
<read>``), so another admin's change in between fails the command (see ``read_modify_write``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.sources import service
from services.intake.sources.schemas import SecretRotation, SourceCreate, SourceOut, SourceUpdate
from services.ticketctl.database import read_modify_write, run_in_transaction
from services.ticketctl.output import console, fail
from services.ticketctl.rules import AUTHOR

sources_app = typer.Typer(
    help="Webhook sources: add, list, update, rotate, retire-secret, enable, disable, remove.",
    no_args_is_help=True,
)
T = TypeVar("T")


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One committed transaction on DATABASE_URL; errors end the command with exit code 1."""

    try:
        return run_in_transaction(work)
    except service.SourceError as exc:
        raise fail(exc.message) from exc


def _change(name: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """:func:`_run` for a change to source ``name``: one changed since it was read fails it."""
    return _run(read_modify_write(f"source {name!r}", work))


def _option_value(raw: str, numbers: bool) -> Any:
    """``key=value``: the value is JSON when it parses (numbers, objects), else the plain string.
    Without ``numbers`` a bare number stays its text: the schema it meets makes it a number where
    it wants one, and an id that is a string of digits (Intercom's) stays one."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if not numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return raw
    return value


def parse_options(pairs: list[str], *, numbers: bool = True) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        # Dotted keys build nested objects: mapping.external_id=/ticket/id
        target = options
        *parents, leaf = key.strip().split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise typer.BadParameter(f"{key}: {part} is not an object", param_hint="--option")
        target[leaf] = _option_value(value, numbers)
    return options


def validated(model: type[T], **fields: Any) -> T:
    try:
        return model(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise fail(f"{field}: {error['msg']}") from exc


def _show(source: SourceOut) -> None:
    state = "enabled" if source.enabled else "disabled"
    console.print(
        f"{source.name} ({source.type}, {state}): {source.secret_count} secret(s) "
        f"[{', '.join(source.secret_fingerprints)}]; webhook path {source.webhook_path}"
    )


@sources_app.command("add")
def add(
    name: str = typer.Argument(..., help="Source name; webhooks go to /v1/webhooks/NAME."),
    type_: str = typer.Option(
        ..., "--type", help="zendesk, jira, github, freshdesk, intercom, zammad, generic or native."
    ),
    secret: str = typer.Option(
        ..., help="The webhook secret configured at the vendor.", prompt=True, hide_input=True
    ),
    option: list[str] = typer.Option(
        [], "--option", help="Adapter option key=value (repeatable; dotted keys nest, JSON values allowed)."
    ),
    disabled: bool = typer.Option(False, help="Create it disabled."),
) -> None:
    """Configure a webhook source."""
    data = validated(
        SourceCreate,
        name=name,
        type=type_,
        secret=secret,
        options=parse_options(option),
        enabled=not disabled,
    )
    _show(_run(lambda s: _out(service.create_source(s, data, AUTHOR))))


async def _out(row: Awaitable[Any]) -> SourceOut:
    return service.to_out(await row)


@sources_app.command("list")
def list_() -> None:
    """List sources (never their secrets)."""

    async def rows(session: AsyncSession) -> list[SourceOut]:
        return [service.to_out(r) for r in await service.list_sources(session)]

    table = Table("name", "type", "enabled", "secrets", "options")
    for source in _run(rows):
        table.add_row(
            source.name,
            source.type,
            "yes" if source.enabled else "no",
            f"{source.secret_count} [{', '.join(source.secret_fingerprints)}]",
            json.dumps(source.options, sort_keys=True),
        )
    console.print(table)


def merge_options(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with ``given`` laid over it: objects in both merge key by key (so
    ``mapping.subject=/title`` keeps ``mapping.external_id``); anything else is replaced."""
    merged = dict(stored)
    for key, value in given.items():
        old = merged.get(key)
        merged[key] = (
            merge_options(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return merged


def unset_option(options: dict[str, Any], dotted: str) -> dict[str, Any]:
    """``options`` without the (dotted) key; a key it does not hold is a mistake, one line."""
    *parents, leaf = dotted.split(".")
    copy = dict(options)
    target = copy
    for part in parents:
        inner = target.get(part)
        if not isinstance(inner, dict):
            raise fail(f"--unset {dotted}: no such option")
        target[part] = target = dict(inner)
    if leaf not in target:
        raise fail(f"--unset {dotted}: no such option")
    del target[leaf]
    return copy


@sources_app.command("update")
def update(
    name: str = typer.Argument(...),
    option: list[str] = typer.Option(
        [],
        "--option",
        help="Adapter option key=value (repeatable; dotted keys nest, JSON values allowed); merged into "
        "the stored options.",
    ),
    unset: list[str] = typer.Option([], "--unset", help="Drop an option (repeatable; dotted keys reach in)."),
    replace: bool = typer.Option(False, "--replace", help="Store only the --option pairs given."),
) -> None:
    """Change a source's adapter options (checked as when it was added)."""
    if not option and not unset and not replace:
        raise typer.BadParameter("nothing to change: give --option, --unset or --replace")
    if replace and unset:
        raise typer.BadParameter("give --unset or --replace, not both", param_hint="--unset")
    given = parse_options(option)

    async def change(session: AsyncSession) -> tuple[SourceOut, bool]:
        row = await service.get_source(session, name)
        options = {} if replace else dict(row.options)
        for dotted in unset:  # first: `--unset mapping --option mapping=...` replaces an object
            options = unset_option(options, dotted)
        data = validated(SourceUpdate, options=merge_options(options, given))
        seen = row.revision
        row = await service.update_source(session, name, data, expected=None, actor=AUTHOR)
        return service.to_out(row), row.revision != seen

    source, changed = _change(name, change)
    what = "updated" if changed else "unchanged"
    options = json.dumps(source.options, sort_keys=True)
    console.print(f"{source.name} {what}: revision {source.revision}; options {options}", soft_wrap=True)


@sources_app.command("rotate")
def rotate(
    name: str = typer.Argument(...),
    secret: str = typer.Option(..., help="The new secret.", prompt=True, hide_input=True),
) -> None:
    """Add a new secret; the previous one stays valid until the next rotation or retire-secret."""
    data = validated(SecretRotation, secret=secret)
    _show(
        _change(
            name, lambda s: _out(service.rotate_secret(s, name, data.secret, expected=None, actor=AUTHOR))
        )
    )


@sources_app.command("retire-secret")
def retire_secret(
    name: str = typer.Argument(...),
    fingerprint: str = typer.Argument(..., help="The secret's fingerprint, as `sources list` shows it."),
) -> None:
    """Remove one secret: the old one once the sender signs with the new, or a leaked one at once."""
    _show(
        _change(
            name, lambda s: _out(service.retire_secret(s, name, fingerprint, expected=None, actor=AUTHOR))
        )
    )


def _set_enabled(name: str, enabled: bool) -> None:
    data = SourceUpdate(enabled=enabled)
    _show(_change(name, lambda s: _out(service.update_source(s, name, data, expected=None, actor=AUTHOR))))


@sources_app.command("disable")
def disable(name: str = typer.Argument(...)) -> None:
    """Refuse this source's webhooks (404) until enabled again."""
    _set_enabled(name, False)


@sources_app.command("enable")
def enable(name: str = typer.Argument(...)) -> None:
    """Accept this source's webhooks again."""
    _set_enabled(name, True)


@sources_app.command("remove")
def remove(name: str = typer.Argument(...)) -> None:
    """Delete a source and its secrets."""
    _change(name, lambda s: service.delete_source(s, name, expected=None, actor=AUTHOR))
    console.print(f"removed {name}")
