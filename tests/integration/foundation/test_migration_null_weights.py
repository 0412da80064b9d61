"""Migration 0007 repairs rule-set versions stored with null pool weights (infinity, as orjson
writes it) or weights above today's maximum, which no longer loaded: not the live set, nor its
history, diffs or rollbacks."""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql

from services.router.models import RuleSetVersion
from services.router.rulesets.service import live
from services.router.rulesets.store import ruleset_of
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import downgrade, upgrade
from tests.conftest import database_params
from tests.integration.foundation.test_migrations import fresh_url

BEFORE = "0006_source_revision"
VERSIONS = sa.table(
    "ruleset_versions",
    sa.column("version", sa.Integer()),
    sa.column("document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    sa.column("author", sa.String()),
    sa.column("comment", sa.Text()),
    sa.column("diff", sa.Text()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def pool_rule(rule_id: str, pool: dict[str, Any]) -> dict[str, Any]:
    return {"id": rule_id, "name": rule_id, "actions": {"assign_pool": pool}}


# As the API stored them: model_dump(mode="json", exclude_none=True), infinity written as null.
BROKEN: dict[str, Any] = {
    "rules": [
        pool_rule(
            "weighted", {"teams": ["a", "b/c"], "strategy": "weighted", "weights": {"a": None, "b/c": 2.5}}
        ),
        {"id": "plain", "name": "null", "actions": {"assign_team": "a", "add_tags": ["null"]}},
        pool_rule("unused", {"teams": ["a"], "strategy": "least_loaded", "weights": {"a": None}}),
    ],
    "timezone": "UTC",
    "default_team": "a",
}
# Valid, with weights and "null" in its text: left exactly as it is.
VALID: dict[str, Any] = {
    "rules": [
        {
            "id": "null",
            "name": "null",
            "when": {"field": "subject", "op": "contains", "value": "null"},
            "actions": {
                "assign_pool": {"teams": ["a", "b"], "strategy": "weighted", "weights": {"a": 1.0, "b": 3.0}}
            },
        }
    ],
    "timezone": "UTC",
}


async def insert(url: str, documents: list[dict[str, Any]]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for version, document in enumerate(documents, start=1):
                await conn.execute(
                    sa.insert(VERSIONS).values(
                        version=version,
                        document=document,
                        author="before 0007",
                        comment="",
                        diff="",
                        created_at=datetime(2026, 1, 1, tzinfo=UTC),
                    )
                )
    finally:
        await engine.dispose()


async def stored(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(VERSIONS.c.document).order_by(VERSIONS.c.version))
            return [document for (document,) in rows]
    finally:
        await engine.dispose()


async def live_weights(url: str) -> list[dict[str, float] | None]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            ruleset = await live(session)
    finally:
        await engine.dispose()
    return [r.actions.assign_pool.weights if r.actions.assign_pool else None for r in ruleset.rules]


def readable(document: dict[str, Any]) -> bool:
    try:
        ruleset_of(RuleSetVersion(version=1, document=document))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("kind", database_params())
def test_null_weights_become_the_largest_weight(
    kind: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_url(kind, tmp_path)
    upgrade(url, BEFORE)
    asyncio.run(insert(url, [BROKEN, VALID, BROKEN]))
    assert [readable(d) for d in asyncio.run(stored(url))] == [False, True, False]

    with caplog.at_level(logging.WARNING, logger="migrations.ruleset_null_weights"):
        upgrade(url)
    places = "/rules/0/actions/assign_pool/weights/a, /rules/2/actions/assign_pool/weights/a"
    assert [r.getMessage() for r in caplog.records if r.name == "migrations.ruleset_null_weights"] == [
        f"rule set version {version}: null pool weights set to 1000000.0 at {places}" for version in (1, 3)
    ]

    documents = asyncio.run(stored(url))
    assert all(readable(d) for d in documents)
    expected = copy.deepcopy(BROKEN)
    expected["rules"][0]["actions"]["assign_pool"]["weights"] = {"a": 1_000_000.0, "b/c": 2.5}
    expected["rules"][2]["actions"]["assign_pool"]["weights"] = {"a": 1_000_000.0}
    assert documents == [expected, VALID, expected]
    assert asyncio.run(live_weights(url)) == [{"a": 1_000_000.0, "b/c": 2.5}, None, {"a": 1_000_000.0}]

    # The repair stays through a downgrade (nothing to undo) and a second upgrade.
    downgrade(url, BEFORE)
    assert asyncio.run(stored(url)) == [expected, VALID, expected]
    upgrade(url)
    assert asyncio.run(stored(url)) == [expected, VALID, expected]


# Stored by the same earlier version: finite weights above today's maximum (1,000,000), which
# the model it ran (weights checked only for w > 0) accepted and today's refuses.
ABOVE: dict[str, Any] = {
    "rules": [
        pool_rule(
            "big", {"teams": ["a", "b"], "strategy": "weighted", "weights": {"a": 5_000_000.0, "b": 1.0}}
        ),
        pool_rule("mixed", {"teams": ["a", "b"], "strategy": "weighted", "weights": {"a": None, "b": 2e12}}),
    ],
    "timezone": "UTC",
}
# Weights at both ends of what today's schema accepts: left exactly as they are.
BOUNDS: dict[str, Any] = {
    "rules": [
        pool_rule(
            "bounds", {"teams": ["a", "b"], "strategy": "weighted", "weights": {"a": 1_000_000.0, "b": 1e-9}}
        )
    ],
    "timezone": "UTC",
}


@pytest.mark.parametrize("kind", database_params())
def test_weights_above_the_maximum_become_the_largest_weight(
    kind: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_url(kind, tmp_path)
    upgrade(url, BEFORE)
    asyncio.run(insert(url, [BOUNDS, ABOVE]))
    assert [readable(d) for d in asyncio.run(stored(url))] == [True, False]

    with caplog.at_level(logging.WARNING, logger="migrations.ruleset_null_weights"):
        upgrade(url)
    assert [r.getMessage() for r in caplog.records if r.name == "migrations.ruleset_null_weights"] == [
        "rule set version 2: null pool weights set to 1000000.0 at /rules/1/actions/assign_pool/weights/a",
        "rule set version 2: pool weights above the maximum set to 1000000.0 at "
        "/rules/0/actions/assign_pool/weights/a (was 5000000.0), "
        "/rules/1/actions/assign_pool/weights/b (was 2000000000000.0)",
    ]

    expected = copy.deepcopy(ABOVE)
    expected["rules"][0]["actions"]["assign_pool"]["weights"] = {"a": 1_000_000.0, "b": 1.0}
    expected["rules"][1]["actions"]["assign_pool"]["weights"] = {"a": 1_000_000.0, "b": 1_000_000.0}
    documents = asyncio.run(stored(url))
    assert documents == [BOUNDS, expected]
    assert all(readable(d) for d in documents)
    assert asyncio.run(live_weights(url)) == [
        {"a": 1_000_000.0, "b": 1.0},
        {"a": 1_000_000.0, "b": 1_000_000.0},
    ]
