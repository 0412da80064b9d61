"""Rule-set versions in the database: every change is a new immutable version."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.config_lock import lock_config
from services.router.models import RuleSetVersion
from services.router.rules import RuleSet, diff_rulesets
from services.router.rules.schema import STORED
from shared.events import utc_now


def ruleset_of(row: RuleSetVersion) -> RuleSet:
    ruleset = RuleSet.model_validate(row.document, context=STORED)  # saved: read as saved
    ruleset.version = row.version
    return ruleset


async def latest_version_number(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(RuleSetVersion.version))) or 0)


async def latest(session: AsyncSession) -> RuleSetVersion | None:
    return await session.scalar(select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1))


async def save_version(
    session: AsyncSession,
    ruleset: RuleSet,
    author: str,
    comment: str = "",
    *,
    base: RuleSet | None = None,
) -> RuleSetVersion:
    """Store ``ruleset`` as the next version; the diff against the previous one is kept with it.

    ``base`` is the version the caller read and checked: the new row is ``base.version + 1``, so a
    writer that committed in between makes this insert collide on the primary key. Re-reading the
    newest version here instead would, under READ COMMITTED, silently save on top of that writer.
    Without ``base`` (seeding tools) the newest version is read.
    """
    # For callers that skip the service (seeding, tests); the service took it already.
    await lock_config(session)
    if base is None:
        previous = await latest(session)
        old = ruleset_of(previous) if previous is not None else RuleSet()
        number = (previous.version if previous is not None else 0) + 1
    else:
        old, number = base, (base.version or 0) + 1
    document = ruleset.model_dump(mode="json", by_alias=True, exclude={"version"}, exclude_none=True)
    row = RuleSetVersion(
        version=number,
        document=document,
        author=author,
        comment=comment,
        diff=diff_rulesets(old, ruleset).render(),
        created_at=utc_now(),
    )
    session.add(row)
    await session.flush()
    return row
