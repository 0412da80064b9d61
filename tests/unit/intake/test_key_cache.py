"""KeyCache when the database is unreachable: a known key keeps working, an unknown one gets 503."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.auth import MAX_CACHED_KEYS, Caller, KeyCache, Role, hash_key
from shared.http.problems import Problem


class DownSessions:
    """A session factory whose sessions fail like an unreachable database."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self

    async def __aenter__(self) -> Any:
        raise ConnectionRefusedError("database down")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_expired_entry_is_served_while_the_database_is_down() -> None:
    sessions = DownSessions()
    keys = KeyCache(sessions, ttl_s=5.0)  # type: ignore[arg-type]
    caller = Caller("id-1", "loader", Role.INTAKE)
    keys._cache[hash_key("tr_intake_x")] = (caller, 0.0)  # expired long ago
    assert await keys.caller_of("tr_intake_x") == caller
    assert sessions.calls == 1
    # The failed refresh is not retried on every request.
    assert await keys.caller_of("tr_intake_x") == caller
    assert sessions.calls == 1


async def test_unknown_key_while_the_database_is_down_is_a_503() -> None:
    keys = KeyCache(DownSessions(), ttl_s=5.0)  # type: ignore[arg-type]
    with pytest.raises(Problem) as raised:
        await keys.caller_of("tr_intake_never_seen")
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}


async def test_concurrent_requests_share_one_lookup() -> None:
    sessions = DownSessions()
    keys = KeyCache(sessions, ttl_s=5.0)  # type: ignore[arg-type]
    caller = Caller("id-2", "loader", Role.INTAKE)
    keys._cache[hash_key("tr_intake_y")] = (caller, 0.0)
    results = await asyncio.gather(*(keys.caller_of("tr_intake_y") for _ in range(20)))
    assert results == [caller] * 20
    assert sessions.calls == 1


class GatedSessions:
    """Sessions whose key lookup answers the row it is given once ``gate`` opens."""

    def __init__(self, row: object) -> None:
        self.row, self.gate, self.calls = row, asyncio.Event(), 0

    def __call__(self) -> Any:
        self.calls += 1
        return self

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def scalar(self, _statement: object) -> object:
        await self.gate.wait()
        return self.row


class KeyRow:
    id, name, role, revoked_at = "id-3", "loader", "intake", None


async def test_a_forgotten_key_is_looked_up_again_and_a_read_in_flight_is_not_cached() -> None:
    sessions = GatedSessions(KeyRow())
    keys = KeyCache(sessions, ttl_s=5.0)  # type: ignore[arg-type]
    sessions.gate.set()
    assert await keys.caller_of("tr_intake_z") == Caller("id-3", "loader", Role.INTAKE)
    keys.forget("id-3")  # revoked here: the cached answer goes
    sessions.gate.clear()
    in_flight = asyncio.ensure_future(keys.caller_of("tr_intake_z"))
    while sessions.calls < 2:
        await asyncio.sleep(0)
    keys.forget("id-3")  # revoked again while that read waits: its answer may predate it
    sessions.gate.set()
    await in_flight
    assert hash_key("tr_intake_z") not in keys._cache


async def test_a_flood_of_unknown_keys_does_not_evict_a_valid_one() -> None:
    sessions = GatedSessions(None)  # every key looked up is unknown
    sessions.gate.set()
    keys = KeyCache(sessions, ttl_s=5.0)  # type: ignore[arg-type]
    valid = Caller("id-4", "loader", Role.INTAKE)
    keys._cache[hash_key("tr_intake_valid")] = (valid, float("inf"))
    for i in range(MAX_CACHED_KEYS + 10):
        assert await keys.caller_of(f"tr_random_{i}") is None
    assert await keys.caller_of("tr_intake_valid") == valid
    assert sessions.calls == MAX_CACHED_KEYS + 10  # the valid key was still cached: no read for it
