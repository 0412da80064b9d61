"""Throwaway PostgreSQL databases for the test suite and the benchmarks (never used by services)."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import URL, make_url


async def _connect(url: URL, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        database=database,
    )


async def create_database(server_url: str, prefix: str) -> str:
    """Create an empty database on the server of ``server_url``; returns its asyncpg URL."""
    url = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await _connect(url, url.database or "postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)


async def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    conn = await _connect(url, "postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()
