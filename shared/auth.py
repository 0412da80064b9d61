"""API keys: random, shown once, stored as SHA-256, with a role.

Roles, from most to least powerful: admin > editor > viewer, and intake (may only post
tickets and webhooks). A key's plain text has the form ``tr_<role>_<random>``, so a leaked key
is recognisable in a secret scanner and scrubbed from our own logs.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import ApiKey
from shared.events import utc_now
from shared.http.problems import Problem


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    INTAKE = "intake"


# Which roles satisfy a required role.
_GRANTS: dict[Role, set[Role]] = {
    Role.ADMIN: {Role.ADMIN},
    Role.EDITOR: {Role.ADMIN, Role.EDITOR},
    Role.VIEWER: {Role.ADMIN, Role.EDITOR, Role.VIEWER},
    Role.INTAKE: {Role.ADMIN, Role.INTAKE},
}


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def generate_key(role: Role) -> str:
    return f"tr_{role.value}_{secrets.token_urlsafe(32)}"


async def create_api_key(session: AsyncSession, name: str, role: Role) -> tuple[ApiKey, str]:
    plain = generate_key(role)
    row = ApiKey(id=str(uuid.uuid4()), name=name, role=role.value, key_hash=hash_key(plain))
    session.add(row)
    return row, plain


async def revoke_api_key(session: AsyncSession, key_id: str) -> bool:
    row = await session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utc_now()
    return True


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the key's id, its name (the audit log's actor) and its role."""

    key_id: str
    name: str
    role: Role


class KeyCache:
    """Resolves bearer keys to callers; caches lookups for ``ttl_s`` so a request costs no DB
    round trip. A revoked key therefore keeps working for at most ``ttl_s`` seconds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = 5.0) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[Caller | None, float]] = {}

    async def caller_of(self, plain: str) -> Caller | None:
        digest = hash_key(plain)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self.sessions() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        caller = None
        if row is not None and row.revoked_at is None:
            caller = Caller(row.id, row.name, Role(row.role))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (caller, now + self.ttl_s)
        return caller

    async def role_of(self, plain: str) -> Role | None:
        caller = await self.caller_of(plain)
        return None if caller is None else caller.role


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def require_caller(required: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency returning the caller: 401 without a valid key, 403 with too little power."""

    async def dependency(request: Request) -> Caller:
        token = bearer_token(request)
        if token is None:
            raise Problem(
                401, "Unauthorized", "missing bearer API key", headers={"WWW-Authenticate": "Bearer"}
            )
        keys: KeyCache = request.app.state.keys
        caller = await keys.caller_of(token)
        if caller is None:
            raise Problem(
                401, "Unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if caller.role not in _GRANTS[required]:
            raise Problem(403, "Forbidden", f"this endpoint needs the {required.value} role")
        return caller

    return dependency


def require_role(required: Role) -> Callable[[Request], Awaitable[Role]]:
    """Like :func:`require_caller`, for endpoints that only need the role."""
    caller_dependency = require_caller(required)

    async def dependency(request: Request) -> Role:
        return (await caller_dependency(request)).role

    return dependency
