"""API keys for the admin API: list, create, revoke; every change audited without the secret.

The last active admin key cannot be revoked over the API: that would leave nobody able to manage
keys except through ``ticketctl`` on the database host.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.apikeys.schemas import ApiKeyCreate
from services.router.errors import Conflict, get_or_404
from shared.auth import Role, create_api_key, revoke_api_key
from shared.db.audit import record
from shared.db.models import ApiKey

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
    """Revoke a key; False when it was revoked already (nothing changes, nothing is audited)."""
    row = await get_key(session, key_id)
    if row.revoked_at is not None:
        return False
    if row.role == Role.ADMIN.value and await _active_admins(session) <= 1:
        raise Conflict(
            "this is the last active admin key: create another admin key before revoking it",
            [{"field": "/key_id", "message": "the last active admin key"}],
        )
    await revoke_api_key(session, key_id)
    record(session, actor, "revoke", ENTITY, row.id, {"name": row.name, "role": row.role})
    return True


async def _active_admins(session: AsyncSession) -> int:
    query = select(func.count()).where(ApiKey.role == Role.ADMIN.value, ApiKey.revoked_at.is_(None))
    return int(await session.scalar(query) or 0)
