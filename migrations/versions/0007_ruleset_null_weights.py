"""Repair rule-set versions whose pool weights today's schema cannot read: null or above the maximum

Revision ID: 0007_ruleset_null_weights
Revises: 0006_source_revision

Pool weights were once checked only for ``w > 0`` (before commit 03b6bf0 bounded them), so two
kinds of weight were accepted and stored that no later version of the rule-set model reads:

* An infinite weight: ``1e999`` or ``Infinity`` in a JSON body, ``inf`` or ``"Infinity"`` in a
  rules file (pydantic reads those strings as infinity). The JSON columns are written with orjson,
  which writes infinity as ``null``: the stored version then had ``"weights": {"a": null}``, which
  no version of the model reads (a weight must be a number). NaN never got that far (``nan > 0``
  is false), nor did -infinity.
* A finite weight above 1,000,000 (``5e6``), which today's model refuses (``le=MAX_WEIGHT``).

Either left the version unreadable: the live set, its history entry, diffs against it and
rollbacks to it all failed. A weight of 0 or below was always refused, so none is stored and none
is touched here.

The schema has no default weight (a team a weighted pool leaves out is never picked, which the
schema refuses to express as a weight), so such a weight becomes what the author asked for as
near as today's schema allows: the largest weight, 1,000,000 (``MAX_WEIGHT`` in
``services/router/rules/schema.py`` when this was written; a copy, so that this migration keeps
doing what it did). Each repaired place is logged (a weight above the maximum with its old value).
"""

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_ruleset_null_weights"
down_revision: str | None = "0006_source_revision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("migrations.ruleset_null_weights")  # outside "alembic", whose NullHandler hides it

REPAIRED_WEIGHT = 1_000_000.0  # the largest weight the schema accepts
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_VERSIONS = sa.table("ruleset_versions", sa.column("version", sa.Integer()), sa.column("document", _JSON))


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _pools_weights(document: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON pointer, weights) of every pool of ``document`` that has weights."""
    rules = document.get("rules") if isinstance(document, dict) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        actions = rule.get("actions") if isinstance(rule, dict) else None
        pool = actions.get("assign_pool") if isinstance(actions, dict) else None
        weights = pool.get("weights") if isinstance(pool, dict) else None
        if isinstance(weights, dict):
            yield f"/rules/{index}/actions/assign_pool/weights", weights


def repair(document: Any) -> tuple[list[str], list[str]]:
    """Set every null pool weight of ``document``, and every one above REPAIRED_WEIGHT, to
    REPAIRED_WEIGHT (in place): the places of the nulls, and of the others with their old value."""
    nulls: list[str] = []
    above: list[str] = []
    for pointer, weights in _pools_weights(document):
        for team, weight in weights.items():  # replacing values only: the keys stay as they are
            place = f"{pointer}/{_pointer_part(team)}"
            if weight is None:
                weights[team] = REPAIRED_WEIGHT
                nulls.append(place)
            elif (
                isinstance(weight, int | float) and not isinstance(weight, bool) and weight > REPAIRED_WEIGHT
            ):
                weights[team] = REPAIRED_WEIGHT
                above.append(f"{place} (was {weight!r})")
    return nulls, above


def upgrade() -> None:
    bind = op.get_bind()
    # Only documents with pool weights can need it (JSON text on SQLite, jsonb's text form on
    # PostgreSQL); they are read one at a time, as a rule set may hold thousands of rules.
    suspects = bind.scalars(
        sa.select(_VERSIONS.c.version)
        .where(sa.cast(_VERSIONS.c.document, sa.Text).like("%weights%"))
        .order_by(_VERSIONS.c.version)
    ).all()
    for version in suspects:
        document = bind.scalar(sa.select(_VERSIONS.c.document).where(_VERSIONS.c.version == version))
        nulls, above = repair(document)
        if not nulls and not above:
            continue
        bind.execute(sa.update(_VERSIONS).where(_VERSIONS.c.version == version).values(document=document))
        if nulls:
            log.warning(
                "rule set version %s: null pool weights set to %s at %s",
                version,
                REPAIRED_WEIGHT,
                ", ".join(nulls),
            )
        if above:
            log.warning(
                "rule set version %s: pool weights above the maximum set to %s at %s",
                version,
                REPAIRED_WEIGHT,
                ", ".join(above),
            )


def downgrade() -> None:
    """Nothing to undo: a repaired document is valid for the previous revision's code as well,
    and the weights it replaced were readable by none of it (nulls by no version at all)."""
