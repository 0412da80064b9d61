"""Repair rule-set versions whose pool weights were stored as null

Revision ID: 0007_ruleset_null_weights
Revises: 0006_source_revision

Pool weights were once checked only for ``w > 0``, so an infinite weight was accepted: ``1e999``
or ``Infinity`` in a JSON body, ``inf`` or ``"Infinity"`` in a rules file (pydantic reads those
strings as infinity). The JSON columns are written with orjson, which writes infinity as ``null``:
the stored version then had ``"weights": {"a": null}``, which no version of the rule-set model
reads (a weight must be a number), so the live set, its history entry, diffs against it and
rollbacks to it all failed. NaN never got that far (``nan > 0`` is false), nor did -infinity.

The schema has no default weight (a team a weighted pool leaves out is never picked, which the
schema refuses to express as a weight), so a null becomes what the author asked for as near as
today's schema allows: the largest weight, 1,000,000 (``MAX_WEIGHT`` in
``services/router/rules/schema.py`` when this was written; a copy, so that this migration keeps
doing what it did). Each repaired place is logged.
"""

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_ruleset_null_weights"
down_revision: str | None = "0006_source_revision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("migrations.ruleset_null_weights")  # outside "alembic", whose NullHandler hides it

REPAIRED_WEIGHT = 1_000_000.0
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_VERSIONS = sa.table("ruleset_versions", sa.column("version", sa.Integer()), sa.column("document", _JSON))


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def repair(document: Any) -> list[str]:
    """Set every null pool weight of ``document`` (in place) to REPAIRED_WEIGHT; the places."""
    repaired: list[str] = []
    rules = document.get("rules") if isinstance(document, dict) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        actions = rule.get("actions") if isinstance(rule, dict) else None
        pool = actions.get("assign_pool") if isinstance(actions, dict) else None
        weights = pool.get("weights") if isinstance(pool, dict) else None
        if not isinstance(weights, dict):
            continue
        for team, weight in weights.items():
            if weight is None:
                weights[team] = REPAIRED_WEIGHT
                repaired.append(f"/rules/{index}/actions/assign_pool/weights/{_pointer_part(team)}")
    return repaired


def upgrade() -> None:
    bind = op.get_bind()
    # Only documents with a null anywhere can need it (JSON text on SQLite, jsonb's text form on
    # PostgreSQL); they are read one at a time, as a rule set may hold thousands of rules.
    suspects = bind.scalars(
        sa.select(_VERSIONS.c.version)
        .where(sa.cast(_VERSIONS.c.document, sa.Text).like("%null%"))
        .order_by(_VERSIONS.c.version)
    ).all()
    for version in suspects:
        document = bind.scalar(sa.select(_VERSIONS.c.document).where(_VERSIONS.c.version == version))
        places = repair(document)
        if places:
            bind.execute(sa.update(_VERSIONS).where(_VERSIONS.c.version == version).values(document=document))
            log.warning(
                "rule set version %s: null pool weights set to %s at %s",
                version,
                REPAIRED_WEIGHT,
                ", ".join(places),
            )


def downgrade() -> None:
    """Nothing to undo: a repaired document is valid for the previous revision's code as well,
    and the nulls it replaced were readable by no version of it."""
