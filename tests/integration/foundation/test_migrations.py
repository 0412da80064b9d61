"""Migrations are the only way the schema changes: they apply, roll back, and match the models."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from migrations.metadata import metadata
from shared.db.engine import create_engine
from shared.db.migrate import alembic_config, downgrade, upgrade
from tests.conftest import POSTGRES_URL, _create_postgres_database, database_params


def fresh_url(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    assert POSTGRES_URL
    return asyncio.run(_create_postgres_database(POSTGRES_URL))


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", database_params())
def test_upgrade_downgrade_upgrade(kind, tmp_path):
    url = fresh_url(kind, tmp_path)
    upgrade(url)
    assert set(metadata.tables) <= asyncio.run(table_names(url))
    downgrade(url, "base")
    assert asyncio.run(table_names(url)) <= {"alembic_version"}
    upgrade(url)
    assert set(metadata.tables) <= asyncio.run(table_names(url))


@pytest.mark.parametrize("kind", database_params())
def test_one_head_and_models_match_migrations(kind, tmp_path):
    # On both databases: types, indexes and constraints are reflected differently by each.
    config = alembic_config(fresh_url(kind, tmp_path))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several migration heads {heads}: add a merge revision"
    command.upgrade(config, "heads")
    command.check(config)  # raises when the models need a migration that does not exist


async def _rows(url: str, sql: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params or {})
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", database_params())
def test_0009_drops_the_deliveries_of_targets_deleted_before_it(kind, tmp_path):
    # Earlier versions deleted a target and left its deliveries: nothing sent them, and SQLite gave
    # the deleted target's id, with them, to the next target created.
    url = fresh_url(kind, tmp_path)
    upgrade(url, "0008_pruning_indexes")
    insert = (
        "INSERT INTO writeback_deliveries (target_id, event_id, kind, ticket_key, body, status, attempts, "
        "next_attempt_at, created_at) VALUES (:target, :event, 'assignment', 'fd:42', '{}', 'pending', 0, "
        ":at, :at)"
    )
    at = datetime(2026, 12, 1, tzinfo=UTC)
    asyncio.run(
        _rows(
            url,
            "INSERT INTO writeback_targets (name, source, url, secret, enabled, event_kinds, revision, "
            "created_at, updated_at) "
            "VALUES ('kept', 'fd', 'https://x.example', 'k', true, '[]', 1, :at, :at)",
            {"at": at},
        )
    )
    [(kept,)] = asyncio.run(_rows(url, "SELECT id FROM writeback_targets"))
    asyncio.run(_rows(url, insert, {"target": kept, "event": "e-kept", "at": at}))
    asyncio.run(_rows(url, insert, {"target": int(str(kept)) + 1, "event": "e-orphan", "at": at}))
    upgrade(url)
    assert asyncio.run(_rows(url, "SELECT event_id FROM writeback_deliveries")) == [("e-kept",)]


@pytest.mark.parametrize("kind", database_params())
def test_0016_retires_the_names_of_sources_deleted_before_it(kind, tmp_path):
    # POST /v1/tickets refuses a deleted webhook source's name from 0016 on; the sources deleted
    # before it are known from the audit log (every deletion is there, in its transaction). A name
    # in use again (deleted, then created again) is a configured source, not a retired one.
    url = fresh_url(kind, tmp_path)
    upgrade(url, "0015_audit_actor_key_id")
    first, last = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    asyncio.run(
        _rows(
            url,
            "INSERT INTO sources (name, adapter, secrets, options, enabled, revision, generation, "
            "created_at, updated_at) VALUES ('back', 'github', '[]', '{}', true, 1, 'g', :at, :at)",
            {"at": last},
        )
    )
    for entity, name, action, at in (
        ("source", "gone", "source.delete", first),
        ("source", "gone", "source.delete", last),
        ("source", "back", "source.delete", first),
        ("source", "kept", "source.update", first),
        ("team", "team-gone", "team.delete", first),
    ):
        asyncio.run(
            _rows(
                url,
                "INSERT INTO audit_log (at, actor, action, entity, entity_id, detail) "
                "VALUES (:at, 'admin', :action, :entity, :name, '{}')",
                {"at": at, "action": action, "entity": entity, "name": name},
            )
        )
    upgrade(url)
    [(retired, retired_at)] = asyncio.run(_rows(url, "SELECT name, retired_at FROM retired_source_names"))
    assert retired == "gone"
    assert datetime.fromisoformat(str(retired_at)).replace(tzinfo=UTC) == last  # naive on SQLite
    downgrade(url, "0015_audit_actor_key_id")
    assert "retired_source_names" not in asyncio.run(table_names(url))


@pytest.mark.parametrize("kind", database_params())
def test_migrate_leaves_a_schema_a_newer_version_migrated(kind, tmp_path, monkeypatch, capsys):
    # Rolling back is deploying the previous image (deploy/README.md, "Upgrades and rollbacks"):
    # its `ticketctl migrate` (compose's migrate service, the Kubernetes Job) runs first and finds a
    # revision it does not know. That must not fail: compose starts no service after a failed migrate.
    from services.ticketctl import main as ticketctl

    url = fresh_url(kind, tmp_path)
    upgrade(url)
    asyncio.run(_rows(url, "UPDATE alembic_version SET version_num = '9999_from_a_newer_version'"))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setattr("sys.argv", ["ticketctl", "migrate"])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    out = capsys.readouterr().out
    assert exited.value.code == 0, out
    assert "9999_from_a_newer_version" in out and "newer" in out
    assert asyncio.run(_rows(url, "SELECT version_num FROM alembic_version")) == [
        ("9999_from_a_newer_version",)
    ]
    monkeypatch.setattr("sys.argv", ["ticketctl", "migrate", "head"])  # alembic's usual spelling
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    assert exited.value.code == 0, capsys.readouterr()
    # A revision named explicitly is still refused when unknown.
    monkeypatch.setattr("sys.argv", ["ticketctl", "migrate", "no-such-revision"])
    with pytest.raises(SystemExit) as exited:
        ticketctl.main()
    assert exited.value.code == 1


@pytest.mark.parametrize("kind", database_params())
def test_migrations_run_twice_at_once_both_succeed(kind, tmp_path):
    # Two deploy jobs (or `make migrate` beside `make run`) migrating one database at once: the
    # second failed on the first's tables ("relation alembic_version already exists"). Now each run
    # waits for the other and finds nothing left to do.
    url = fresh_url(kind, tmp_path)
    code = f"from shared.db.migrate import upgrade; upgrade({url!r})"
    runs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=300)[1].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [error[-600:] for error in errors]
    heads = ScriptDirectory.from_config(alembic_config(url)).get_heads()
    assert asyncio.run(_rows(url, "SELECT version_num FROM alembic_version")) == [(heads[0],)]
