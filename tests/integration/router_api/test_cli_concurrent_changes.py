"""ticketctl's read-modify-write commands under a concurrent change: another admin's change
committed between the command's read and its write survives, and the command ends with one line
on stderr naming what changed and exit status 1 (never a silent overwrite).

ticketctl calls the services on the database (no HTTP, no If-Match): the concurrent change is
made by wrapping the service function the command reads with (sources' ``get_source``) or writes
with, which commits the other admin's change on a connection of its own in between.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from services.intake.models import Source
from services.intake.sources import service as sources
from services.intake.sources.schemas import SourceCreate, SourceUpdate
from services.router.rules import RuleSet, ruleset_to_yaml
from services.router.rulesets import service as rulesets
from services.router.writeback import service as writeback
from services.router.writeback.models import WritebackTarget
from services.router.writeback.schemas import TargetIn
from services.ticketctl.database import in_transaction
from services.ticketctl.main import app
from shared.db.engine import create_engine, session_factory
from tests.integration.router_api.helpers import live_rules, restore_live_rules

RERUN = "changed by someone else since it was read; run the command again"


def on_database(database_url: str, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    return asyncio.run(in_transaction(work, database_url))


def before_write(
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    function: str,
    database_url: str,
    other_admin: Callable[[AsyncSession], Awaitable[Any]],
    *,
    after_it: bool = False,
) -> list[int]:
    """Make ``module.function`` commit ``other_admin``'s change (once, in its own transaction)
    before it runs, or ``after_it`` (for the function that reads what the command changes); the
    returned list is not empty once it was called. ``other_admin`` may call it too: its calls
    just run."""
    original = getattr(module, function)
    calls: list[int] = []

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if calls:
            return await original(*args, **kwargs)
        calls.append(1)
        if not after_it:
            await in_transaction(other_admin, database_url)
            return await original(*args, **kwargs)
        result = await original(*args, **kwargs)
        await in_transaction(other_admin, database_url)
        return result

    monkeypatch.setattr(module, function, wrapped)
    return calls


@pytest.mark.parametrize(
    "args",
    [
        ["update", "--option", "auth_header=X-Cli"],  # merged into the options it read
        ["rotate", "--secret", "race-secret-0002"],
        ["disable"],
        ["remove"],
    ],
    ids=lambda args: args[0],
)
def test_sources_commands_keep_a_concurrent_change(
    database_url: str, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """The other admin's change lands just after the command read the source (every command
    reads it with ``get_source``; ``update`` computes the options it writes from it)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    name = f"race-{uuid.uuid4().hex[:8]}"
    created = {"mapping": {"external_id": "/id"}, "auth_header": "X-Key"}
    concurrent = {"mapping": {"external_id": "/ticket/id"}, "auth_header": "X-Key"}
    data = SourceCreate(name=name, type="generic", secret="race-secret-0001", options=created)
    on_database(database_url, lambda s: sources.create_source(s, data, "setup"))

    async def other_admin(session: AsyncSession) -> None:
        update = SourceUpdate(options=concurrent)
        await sources.update_source(session, name, update, expected=1, actor="other")

    calls = before_write(monkeypatch, sources, "get_source", database_url, other_admin, after_it=True)
    result = CliRunner().invoke(app, ["sources", args[0], name, *args[1:]])

    assert calls, "the command did not read the source with get_source"
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"source {name!r} {RERUN}", result.stderr
    assert not result.stdout

    async def stored(session: AsyncSession) -> tuple[dict[str, Any], bool, list[str], int]:
        row = await session.get(Source, name)
        assert row is not None
        return dict(row.options), row.enabled, list(row.secrets), row.revision

    # The other admin's change, kept whole; nothing of the command's.
    assert on_database(database_url, stored) == (concurrent, True, ["race-secret-0001"], 2)


@pytest.mark.parametrize("command", ["enable", "disable", "remove"])
def test_writeback_commands_keep_a_concurrent_change(
    database_url: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """``writeback enable|disable`` writes every field as it read them (the API has only PUT): a
    URL changed meanwhile must not be put back, nor a target changed meanwhile removed."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    name = f"race-{uuid.uuid4().hex[:8]}"
    fields = {"name": name, "source": "github-main", "url": "https://hooks.example.com/old"}
    data = TargetIn(**fields, secret="race-secret-0001", enabled=command != "enable")

    async def create(session: AsyncSession) -> int:
        return (await writeback.create_target(session, data, "setup")).id

    target_id = on_database(database_url, create)
    moved = TargetIn(**{**data.model_dump(), "url": "https://hooks.example.com/new"})

    async def other_admin(session: AsyncSession) -> None:
        await writeback.update_target(session, target_id, moved, expected=1, actor="other")

    function = "delete_target" if command == "remove" else "update_target"
    calls = before_write(monkeypatch, writeback, function, database_url, other_admin)
    result = CliRunner().invoke(app, ["writeback", command, name])

    assert calls, f"the command did not write through {function}"
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"write-back target {name!r} {RERUN}", result.stderr
    assert not result.stdout

    async def stored(session: AsyncSession) -> tuple[str, bool, int]:
        row = await session.scalar(select(WritebackTarget).where(WritebackTarget.id == target_id))
        assert row is not None
        return row.url, row.enabled, row.revision

    assert on_database(database_url, stored) == ("https://hooks.example.com/new", data.enabled, 2)


@pytest.fixture
def rules_restored(database_url: str) -> Iterator[None]:
    """Tests share one database: the rule set live before the test is live again after it."""

    async def on_sessions(work: Callable[[Any], Awaitable[Any]]) -> Any:
        engine = create_engine(database_url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    before = asyncio.run(on_sessions(live_rules))
    yield
    asyncio.run(on_sessions(lambda sessions: restore_live_rules(sessions, before)))


def one_rule(rule_id: str, priority: str) -> RuleSet:
    return RuleSet.model_validate(
        {"rules": [{"id": rule_id, "name": rule_id, "actions": {"set_priority": priority}}]}
    )


@pytest.mark.usefixtures("rules_restored")
@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_rules_apply_and_rollback_keep_a_concurrent_version(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    """``rules apply FILE`` replaces the live set with the file, ``rollback V`` with version V, both
    after showing the diff against the version they read: a version saved after that read is
    not replaced unseen."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    mine, theirs = f"mine-{uuid.uuid4().hex[:8]}", f"theirs-{uuid.uuid4().hex[:8]}"

    async def save(session: AsyncSession, ruleset: RuleSet) -> int:
        saved = await rulesets.replace_ruleset(session, ruleset, rulesets.Edit(None, "setup"))
        assert saved.version is not None
        return saved.version

    earlier = on_database(database_url, lambda s: save(s, one_rule(mine, "P2")))
    on_database(database_url, lambda s: save(s, one_rule(f"{mine}-later", "P2")))
    path = tmp_path / "rules.yaml"
    path.write_text(ruleset_to_yaml(one_rule(mine, "P2")))

    async def other_admin(session: AsyncSession) -> None:
        await save(session, one_rule(theirs, "P3"))

    function = "replace_ruleset" if command == "apply" else "rollback"
    calls = before_write(monkeypatch, rulesets, function, database_url, other_admin)
    args = [str(path)] if command == "apply" else [str(earlier)]
    result = CliRunner().invoke(app, ["rules", command, *args, "--yes"])

    assert calls, f"the command did not write through {function}"
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"the rule set {RERUN}", result.stderr

    async def live_ids(session: AsyncSession) -> list[str]:
        return [rule.id for rule in (await rulesets.live(session)).rules]

    assert on_database(database_url, live_ids) == [theirs]
