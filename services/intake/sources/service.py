"""Source management: plain functions over a session, used by the REST API and by ``ticketctl``."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Source
from services.intake.sources.schemas import SourceCreate, SourceOut, SourceUpdate
from services.intake.webhooks import SourceConfig, validate_generic_mapping
from shared.db.audit import record
from shared.events import utc_now

MAX_SECRETS = 2


class SourceError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SourceNotFound(SourceError):
    pass


class SourceExists(SourceError):
    pass


class InvalidSource(SourceError):
    pass


def _options_pointer(message: str) -> str:
    """``mapping.external_id: required`` -> ``/options/mapping/external_id``."""
    match = re.match(r"^([A-Za-z0-9_.$-]+):", message)
    path = match.group(1).split(".") if match else []
    return "/" + "/".join(["options", *path])


def validate_options(adapter: str, options: dict[str, Any]) -> None:
    if adapter == "generic":
        try:
            validate_generic_mapping(options)
        except ValueError as exc:
            raise InvalidSource(str(exc), _options_pointer(str(exc))) from exc
    for table in ("status_map", "priority_map"):
        if table in options and not isinstance(options[table], dict):
            raise InvalidSource(f"{table}: expected an object of word -> word", f"/options/{table}")
    header = options.get("auth_header")
    if header is not None and not (isinstance(header, str) and header.strip()):
        raise InvalidSource("auth_header: expected a header name", "/options/auth_header")


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def to_out(row: Source) -> SourceOut:
    return SourceOut(
        name=row.name,
        type=row.adapter,
        enabled=row.enabled,
        options=row.options,
        secret_count=len(row.secrets),
        secret_fingerprints=[fingerprint(s) for s in row.secrets],
        created_at=row.created_at,
        updated_at=row.updated_at,
        webhook_path=f"/v1/webhooks/{row.name}",
    )


def to_config(row: Source) -> SourceConfig:
    return SourceConfig(name=row.name, adapter=row.adapter, secrets=row.secrets, options=row.options)


async def get_source(session: AsyncSession, name: str) -> Source:
    row = await session.get(Source, name)
    if row is None:
        raise SourceNotFound(f"no source named {name!r}")
    return row


async def list_sources(session: AsyncSession) -> list[Source]:
    return list((await session.scalars(select(Source).order_by(Source.name))).all())


def _audit(session: AsyncSession, actor: str, action: str, name: str, detail: dict[str, Any]) -> None:
    # Secrets appear by fingerprint only (as the API shows them), never in the clear.
    record(session, actor, f"source.{action}", "source", name, detail)


async def create_source(session: AsyncSession, data: SourceCreate, actor: str) -> Source:
    validate_options(data.type, data.options)
    if await session.get(Source, data.name) is not None:
        raise SourceExists(f"a source named {data.name!r} exists", "/name")
    row = Source(
        name=data.name, adapter=data.type, secrets=[data.secret], options=data.options, enabled=data.enabled
    )
    session.add(row)
    await session.flush()
    _audit(
        session,
        actor,
        "create",
        data.name,
        {
            "type": data.type,
            "enabled": data.enabled,
            "options": data.options,
            "secret": fingerprint(data.secret),
        },
    )
    return row


async def update_source(session: AsyncSession, name: str, data: SourceUpdate, actor: str) -> Source:
    row = await get_source(session, name)
    changes: dict[str, Any] = {}
    if data.options is not None:
        validate_options(row.adapter, data.options)
        if data.options != row.options:
            changes["options"] = {"old": row.options, "new": data.options}
        row.options = data.options
    if data.enabled is not None:
        if data.enabled != row.enabled:
            changes["enabled"] = {"old": row.enabled, "new": data.enabled}
        row.enabled = data.enabled
    row.updated_at = utc_now()
    await session.flush()
    if changes:
        _audit(session, actor, "update", name, {"changes": changes})
    return row


async def rotate_secret(session: AsyncSession, name: str, secret: str, actor: str) -> Source:
    """Add ``secret``; keep the newest two so signatures under the previous one still pass."""
    row = await get_source(session, name)
    # A new list (not an in-place append) so the JSON column is seen as changed.
    row.secrets = [*(s for s in row.secrets if s != secret), secret][-MAX_SECRETS:]
    row.updated_at = utc_now()
    await session.flush()
    _audit(session, actor, "rotate", name, {"secrets": [fingerprint(s) for s in row.secrets]})
    return row


async def delete_source(session: AsyncSession, name: str, actor: str) -> None:
    row = await get_source(session, name)
    detail = {"type": row.adapter, "secrets": [fingerprint(s) for s in row.secrets]}
    await session.delete(row)
    await session.flush()
    _audit(session, actor, "delete", name, detail)
