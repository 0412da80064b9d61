"""API keys for the admin API: list, create, revoke; every change audited without the secret.

The last active admin key cannot be revoked over the API: that would leave nobody able to manage
keys except through ``ticketctl`` on the database host.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.router.apikeys.schemas import ApiKeyCreate
from services.router.errors import Conflict, get_or_404
from shared.auth import Role, create_api_key
from shared.db.audit import record
from shared.db.dialect import is_postgres
from shared.db.models import ApiKey
from shared.events import utc_now

ENTITY = "api_key"


async def list_keys(session: AsyncSession, active: bool | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if active is not None:
        query = query.where(ApiKey.revoked_at.is_(None) if active else ApiKey.revoked_at.is_not(None))
    return list((await session.scalars(query)).all())


async def get_key(session: AsyncSession, key_id: str) -> ApiKey:
    return await get_or_404(session, ApiKey, key_id, f"API key {key_id}")


async def create_key(session: AsyncSession, data: ApiKeyCreate, actor: str) -> tuple[ApiKey, str]:
    row, plain = await create_api_key(session, data.name, data.role)
    await session.flush()  # created_at
    record(session, actor, "create", ENTITY, row.id, {"name": row.name, "role": row.role})
    return row, plain


async def revoke_key(session: AsyncSession, key_id: str, actor: str) -> bool:
    """Revoke a key; False when it was revoked already (nothing changes, nothing is audited).

    Two admins revoking each other's key at once must not both succeed. The revocation is one
    UPDATE whose WHERE requires another active admin key, so a count read earlier cannot go stale:
    SQLite runs the statement under its write lock, and on PostgreSQL the active admin keys are
    row-locked first, so the second UPDATE waits and then sees the first one's revocation."""
    row = await get_key(session, key_id)
    if row.revoked_at is not None:
        return False
    conditions: list[ColumnElement[bool]] = [ApiKey.id == key_id, ApiKey.revoked_at.is_(None)]
    if row.role == Role.ADMIN.value:
        if is_postgres(session):
            await session.execute(
                select(ApiKey.id).where(_active_admin(ApiKey)).order_by(ApiKey.id).with_for_update()
            )
        other = aliased(ApiKey)
        conditions.append(exists().where(_active_admin(other), other.id != key_id))
    result = await session.execute(
        update(ApiKey)
        .where(*conditions)
        .values(revoked_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    await session.refresh(row)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if row.revoked_at is not None:
            return False  # revoked concurrently
        raise Conflict(
            "this is the last active admin key: create another admin key before revoking it",
            [{"field": "/path/key_id", "message": "the last active admin key"}],
        )
    record(session, actor, "revoke", ENTITY, row.id, {"name": row.name, "role": row.role})
    return True


def _active_admin(keys: type[ApiKey]) -> ColumnElement[bool]:
    return (keys.role == Role.ADMIN.value) & keys.revoked_at.is_(None)
