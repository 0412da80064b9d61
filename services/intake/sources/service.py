"""Source management: plain functions over a session, used by the REST API and by ``ticketctl``.

Changes are revision-checked twice, as the router's write-back targets are: against ``expected``
(the client's If-Match; None for ``ticketctl``, which changes whatever is current), then by the
mapper's ``version_id_col``, so a writer that committed in between makes the flush fail
(StaleDataError -> :class:`~shared.http.preconditions.Stale`) instead of being overwritten.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.intake.models import RetiredSourceName, Source
from services.intake.sources.schemas import SourceCreate, SourceOut, SourceUpdate
from services.intake.tickets.schemas import NATIVE_SOURCE
from services.intake.webhooks import SourceConfig, UnmappableError, validate_generic_mapping
from services.intake.webhooks.common import map_event_word
from services.intake.webhooks.generic import is_header_name
from services.intake.webhooks.signatures import zendesk_tolerance
from shared.db.audit import record
from shared.db.storable import pointer_token
from shared.events import TicketStatus, parse_priority, utc_now
from shared.http.preconditions import Expected, Stale, check_expected, etag, new_generation

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


class LastSecret(SourceError):
    """Retiring it would leave the source without a secret, refusing every webhook."""


def etag_prefix(name: str) -> str:
    return f"source-{name}"


def source_etag(name: str, revision: int, generation: str) -> str:
    return etag(etag_prefix(name), revision, generation)


def _check_revision(row: Source, expected: Expected) -> None:
    check_expected(
        expected, row.revision, source_etag(row.name, row.revision, row.generation), row.generation
    )


async def _flush(session: AsyncSession, row: Source) -> None:
    """Flush the change to ``row`` ``WHERE revision = <read>``; a concurrent writer's commit makes
    it fail."""
    name, seen, generation = row.name, row.revision, row.generation  # a failed flush expires them
    try:
        await session.flush()
    except StaleDataError as exc:
        # The winner bumped the revision to seen + 1: name its ETag (had it deleted the source,
        # the client's re-read gets 404).
        current = source_etag(name, seen + 1, generation)
        raise Stale(current, "changed concurrently; re-read and retry") from exc


def _options_pointer(message: str) -> str:
    """``mapping.external_id: required`` -> ``/options/mapping/external_id``."""
    match = re.match(r"^([A-Za-z0-9_.$-]+):", message)
    path = match.group(1).split(".") if match else []
    return "/" + "/".join(["options", *path])


def _word_problem(table: str, value: Any) -> str | None:
    """Why ``value`` of word table ``table`` is no status, priority or event word, as a delivery
    reads it (``map_status``, ``map_priority``, ``map_event_word``), else None."""
    if table == "status_map":
        if isinstance(value, str) and value in TicketStatus.__members__.values():
            return None
        return f"{value!r} is not one of {[s.value for s in TicketStatus]}"
    try:
        if table == "priority_map":
            parse_priority(value)
        else:
            map_event_word(value, table)
    except ValueError as exc:
        return str(exc)
    except UnmappableError as exc:
        return exc.reason
    return None


def _check_word_tables(adapter: str, options: dict[str, Any]) -> None:
    """Every adapter's word tables (zammad's trigger_events too), checked as generic's were: a word
    sent to no status, priority or event was stored, and every delivery carrying it was refused (422)."""
    tables = ("status_map", "priority_map", *(("trigger_events",) if adapter == "zammad" else ()))
    for table in tables:
        if table not in options:
            continue
        words = options[table]
        if not isinstance(words, dict):
            raise InvalidSource(f"{table}: expected an object of word -> word", f"/options/{table}")
        for word, value in words.items():
            problem = _word_problem(table, value)
            if problem is not None:
                field = f"/options/{table}/{pointer_token(word)}"
                raise InvalidSource(f"{table}.{word}: {problem}", field)


def validate_options(adapter: str, options: dict[str, Any]) -> None:
    _check_word_tables(adapter, options)  # first: it names a word holding a space, generic's did not
    if adapter == "generic":
        try:
            validate_generic_mapping(options)
        except ValueError as exc:
            raise InvalidSource(str(exc), _options_pointer(str(exc))) from exc
    if adapter == "zendesk" and "timestamp_tolerance" in options:
        try:
            zendesk_tolerance(options)
        except ValueError as exc:
            raise InvalidSource(str(exc), "/options/timestamp_tolerance") from exc
    # Every adapter's: native sources take their delivery id from delivery_header as generic ones
    # do (services/intake/webhooks/signatures.py), and one that is no header name matches no
    # request, so each delivery was deduplicated by its body's hash instead.
    for option in ("auth_header", "delivery_header"):
        header = options.get(option)
        if header is not None and not is_header_name(header):
            raise InvalidSource(f"{option}: expected a header name", f"/options/{option}")


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def to_out(row: Source) -> SourceOut:
    out = SourceOut(
        name=row.name,
        type=row.adapter,
        enabled=row.enabled,
        options=row.options,
        secret_count=len(row.secrets),
        secret_fingerprints=[fingerprint(s) for s in row.secrets],
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        webhook_path=f"/v1/webhooks/{row.name}",
    )
    out._generation = row.generation
    return out


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
    if data.name == NATIVE_SOURCE:  # a source's name is refused to POST /v1/tickets
        raise InvalidSource(
            f"{NATIVE_SOURCE!r} is the source of the tickets posted to POST /v1/tickets", "/name"
        )
    validate_options(data.type, data.options)
    if await session.get(Source, data.name) is not None:
        raise SourceExists(f"a source named {data.name!r} exists", "/name")
    row = Source(
        name=data.name,
        adapter=data.type,
        secrets=[data.secret],
        options=data.options,
        enabled=data.enabled,
        generation=new_generation(),
    )
    session.add(row)
    try:
        await session.flush()  # revision 1
    except IntegrityError as exc:  # created concurrently, after the check above
        raise SourceExists(f"a source named {data.name!r} exists", "/name") from exc
    # A deleted source's name taken again (the way to change a source's type): a configured
    # source's now, refused to POST /v1/tickets as such, and retired anew when this one is deleted.
    await session.execute(delete(RetiredSourceName).where(RetiredSourceName.name == data.name))
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
            "revision": row.revision,
        },
    )
    return row


async def update_source(
    session: AsyncSession, name: str, data: SourceUpdate, *, expected: Expected, actor: str
) -> Source:
    """Apply the given fields; a no-op keeps the revision (and the ETag clients hold), as for teams."""
    row = await get_source(session, name)
    _check_revision(row, expected)
    changes: dict[str, Any] = {}
    if data.options is not None:
        validate_options(row.adapter, data.options)
        if data.options != row.options:
            changes["options"] = {"old": row.options, "new": data.options}
    if data.enabled is not None and data.enabled != row.enabled:
        changes["enabled"] = {"old": row.enabled, "new": data.enabled}
    if not changes:
        return row
    for key, change in changes.items():
        setattr(row, key, change["new"])
    row.updated_at = utc_now()
    await _flush(session, row)  # bumps ``revision``
    _audit(session, actor, "update", name, {"changes": changes, "revision": row.revision})
    return row


async def rotate_secret(
    session: AsyncSession, name: str, secret: str, *, expected: Expected, actor: str
) -> Source:
    """Add ``secret``; keep the newest two so signatures under the previous one still pass."""
    row = await get_source(session, name)
    _check_revision(row, expected)
    # A new list (not an in-place append) so the JSON column is seen as changed.
    secrets = [*(s for s in row.secrets if s != secret), secret][-MAX_SECRETS:]
    if secrets == row.secrets:  # the newest already: a no-op keeps the revision, as update's does
        return row
    row.secrets = secrets
    row.updated_at = utc_now()
    await _flush(session, row)
    detail = {"secrets": [fingerprint(s) for s in row.secrets], "revision": row.revision}
    _audit(session, actor, "rotate", name, detail)
    return row


async def retire_secret(
    session: AsyncSession, name: str, secret_fingerprint: str, *, expected: Expected, actor: str
) -> Source:
    """Remove the secret with ``secret_fingerprint`` (as listed): the end of a rotation once the
    sender signs with the new one, or at once for a leaked secret. Never the last one."""
    row = await get_source(session, name)
    _check_revision(row, expected)
    kept = [s for s in row.secrets if fingerprint(s) != secret_fingerprint]
    if len(kept) == len(row.secrets):
        listed = ", ".join(fingerprint(s) for s in row.secrets)
        raise SourceNotFound(f"source {name!r} has no secret {secret_fingerprint!r} (it has {listed})")
    if not kept:
        raise LastSecret(f"{secret_fingerprint!r} is the only secret of source {name!r}: rotate first")
    row.secrets = kept
    row.updated_at = utc_now()
    await _flush(session, row)
    detail = {
        "retired": secret_fingerprint,
        "secrets": [fingerprint(s) for s in kept],
        "revision": row.revision,
    }
    _audit(session, actor, "retire_secret", name, detail)
    return row


async def delete_source(session: AsyncSession, name: str, *, expected: Expected, actor: str) -> None:
    row = await get_source(session, name)
    _check_revision(row, expected)
    seen = row.revision
    detail = {"type": row.adapter, "secrets": [fingerprint(s) for s in row.secrets], "revision": seen}
    await session.delete(row)
    await _flush(session, row)  # DELETE WHERE revision = seen: an edit since the check is not lost
    # The source's tickets stay in the router and its helpdesk still gets their write-backs, so
    # the name stays refused to POST /v1/tickets (see SourceCache). In this same commit, so every
    # read finds the name either configured or retired. A merge, not an add: a name already listed
    # (put there by hand while the source existed) only gets this time.
    await session.merge(RetiredSourceName(name=name, retired_at=utc_now()))
    _audit(session, actor, "delete", name, detail)
