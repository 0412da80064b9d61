"""API keys: random, shown once, stored as SHA-256, with a role.

Roles, from most to least powerful: admin > editor > viewer, and intake (may only post
tickets and webhooks). A key's plain text has the form ``tr_<role>_<random>``, so a leaked key
is recognisable in a secret scanner and scrubbed from our own logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.caches import make_room
from shared.db import audit
from shared.db.models import ApiKey
from shared.events import utc_now
from shared.http.problems import Problem

log = logging.getLogger(__name__)

MAX_CACHED_KEYS = 10_000  # bounds memory against a scan of random bearer tokens


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
    round trip. A revoked key therefore keeps working for at most ``ttl_s`` seconds.

    When a refresh fails (database unreachable) the expired entry keeps being served: the key was
    valid a moment ago, and failing every request during a database blip would turn a read-only
    check into an outage. A key never seen before cannot be checked then: 503."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_s: float = 5.0) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[Caller | None, float]] = {}
        self._lookups: dict[str, asyncio.Future[Caller | None]] = {}
        self._forgets = 0  # a lookup that saw a forget happen while it read caches nothing

    async def caller_of(self, plain: str) -> Caller | None:
        digest = hash_key(plain)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        lookup = self._lookups.get(digest)
        if lookup is None:  # one database read per key, however many requests wait for it
            lookup = self._lookups[digest] = asyncio.ensure_future(self._lookup(digest, hit))
            lookup.add_done_callback(lambda done: self._lookup_done(digest, done))
        return await asyncio.shield(lookup)

    async def _lookup(self, digest: str, hit: tuple[Caller | None, float] | None) -> Caller | None:
        now, forgets = time.monotonic(), self._forgets
        try:
            async with self.sessions() as session:
                row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        except Exception as exc:
            if hit is not None:
                log.warning("API key lookup failed, serving the cached answer", extra={"error": repr(exc)})
                self._cache[digest] = (hit[0], now + min(self.ttl_s, 1.0))  # retry soon, not per request
                return hit[0]
            log.error("API key lookup failed", extra={"error": repr(exc)})
            raise Problem(
                503, "Service unavailable", "cannot check the API key now", headers={"Retry-After": "5"}
            ) from exc
        caller = None
        if row is not None and row.revoked_at is None:
            caller = Caller(row.id, row.name, Role(row.role))
        if forgets != self._forgets:  # read before a revocation committed, perhaps
            return caller
        make_room(self._cache, MAX_CACHED_KEYS, lambda entry: entry[0] is not None)
        self._cache[digest] = (caller, now + self.ttl_s)
        return caller

    def forget(self, key_id: str) -> None:
        """Drop the cached answers for ``key_id``: the replica that revoked a key refuses it at once
        (the others within ``ttl_s``). A lookup in flight keeps its answer uncached, since it may
        have read the row before the revocation committed."""
        self._forgets += 1
        for digest in [d for d, (caller, _) in self._cache.items() if caller and caller.key_id == key_id]:
            del self._cache[digest]

    def _lookup_done(self, digest: str, done: asyncio.Future[Caller | None]) -> None:
        if self._lookups.get(digest) is done:
            del self._lookups[digest]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have been cancelled

    async def role_of(self, plain: str) -> Role | None:
        caller = await self.caller_of(plain)
        return None if caller is None else caller.role


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request, required: Role) -> Caller:
    """The caller of ``request``: 401 without a valid key, 403 with too little power, 503 when the
    key cannot be checked. A plain function, so hot endpoints can call it without the dependency
    machinery."""
    token = bearer_token(request)
    if token is None:
        raise Problem(401, "Unauthorized", "missing bearer API key", headers={"WWW-Authenticate": "Bearer"})
    keys: KeyCache = request.app.state.keys
    caller = await keys.caller_of(token)
    if caller is None:
        raise Problem(
            401, "Unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    if caller.role not in _GRANTS[required]:
        raise Problem(403, "Forbidden", f"this endpoint needs the {required.value} role")
    audit.acting_key(caller.name, caller.key_id)  # what the request changes is audited with the key's id
    return caller


def require_caller(required: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency returning the caller (see :func:`authenticate`)."""

    async def dependency(request: Request) -> Caller:
        return await authenticate(request, required)

    return dependency


def require_role(required: Role) -> Callable[[Request], Awaitable[Role]]:
    """Like :func:`require_caller`, for endpoints that only need the role."""
    caller_dependency = require_caller(required)

    async def dependency(request: Request) -> Role:
        return (await caller_dependency(request)).role

    return dependency
