"""Write-back targets and deliveries: list, create, replace, delete, retry; every change audited.

A target holds a signing secret and the URL ticket data is sent to, so who changed it matters:
each change is in the audit log, whose detail says whether the secret changed, never what it is.
Changes are revision-checked twice: against the client's If-Match, then by the mapper's
``version_id_col`` (``WHERE revision = <read>`` on UPDATE and DELETE), so a writer that committed
in between makes the flush fail (StaleDataError) instead of being overwritten.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from services.router.config_lock import lock_config
from services.router.errors import Conflict, Invalid, get_or_404
from services.router.slas.service import policies_notifying
from services.router.teams.states import team_problem, team_states
from services.router.writeback.connectors import teams_by_group, ticket_source
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.schemas import (
    TargetIn,
    TargetOut,
    clear_text_refusal,
    hide_url_secrets,
    hide_userinfo,
)
from shared.db.audit import record
from shared.db.pruning import cutoff
from shared.db.storable import pointer_token
from shared.events import utc_now
from shared.http.preconditions import Expected, Stale, check_expected, etag, new_generation

ENTITY = "writeback_target"
DELIVERY = "writeback_delivery"
# Every field but the secret.
AUDITED = ("name", "source", "connector", "url", "options", "enabled", "event_kinds")
TEAM_MAPPINGS = ("groups", "group_names")  # the options naming our teams (teams_by_group reads them)


def etag_prefix(target_id: int) -> str:
    return f"writeback-target-{target_id}"


def target_etag(row: WritebackTarget) -> str:
    return etag(etag_prefix(row.id), row.revision, row.generation)


def to_out(row: WritebackTarget) -> TargetOut:
    return TargetOut.model_validate(row)


def _fields(row: WritebackTarget) -> dict[str, Any]:
    return {key: getattr(row, key) for key in AUDITED}


def _shown(key: str, value: Any) -> Any:
    """A value as the audit log may show it: a URL saved before credentials in URLs were refused
    keeps its password out of the log, which viewers read, and any URL its query's values (a
    webhook's ``?token=``), as answers show it."""
    if key == "url" and isinstance(value, str):
        return hide_url_secrets(value)
    return hide_userinfo(value) if isinstance(value, str) else value


def _audited(row: WritebackTarget) -> dict[str, Any]:
    return {key: _shown(key, value) for key, value in _fields(row).items()}


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a target named {name!r} exists", [{"field": "/name", "message": "already exists"}])


def _lost_race(target_id: int, generation: str, seen: int) -> Stale:
    # The winner bumped the revision to seen + 1: name its ETag, as rule sets' and SLA configs'
    # races do. Had it deleted the target, the client's re-read gets 404.
    current = etag(etag_prefix(target_id), seen + 1, generation)
    return Stale(current, "changed concurrently; re-read and retry")


async def list_targets(session: AsyncSession) -> list[WritebackTarget]:
    return list((await session.scalars(select(WritebackTarget).order_by(WritebackTarget.id))).all())


async def get_target(session: AsyncSession, target_id: int) -> WritebackTarget:
    return await get_or_404(session, WritebackTarget, target_id, f"write-back target {target_id}")


async def _check_name_free(session: AsyncSession, name: str, target_id: int | None = None) -> None:
    query = select(WritebackTarget.id).where(WritebackTarget.name == name)
    if target_id is not None:
        query = query.where(WritebackTarget.id != target_id)
    if await session.scalar(query.limit(1)) is not None:
        raise _name_taken(name)


async def _check_not_notified(session: AsyncSession, name: str, change: str) -> None:
    """A policy's notify action names targets: one that goes away would never be told, silently
    (as a team a policy reassigns to cannot be deleted)."""
    policies = await policies_notifying(session, name)
    if policies:
        message = f"target {name!r} cannot be {change}: SLA policies {policies} notify it"
        raise Conflict(message, [{"field": "/name", "message": message}])


async def _check_groups_agree(session: AsyncSession, data: TargetIn, target_id: int | None = None) -> None:
    """The router reads a source's groups back as teams (groups.py): two targets of one source
    must not name one helpdesk group for two teams, or one's own write-back would read back as
    the other's team."""
    mine = teams_by_group(data.options)
    if not mine:
        return
    query = select(WritebackTarget).where(WritebackTarget.source == data.source)
    if target_id is not None:
        query = query.where(WritebackTarget.id != target_id)
    for other in (await session.scalars(query)).all():
        for group, team in teams_by_group(other.options).items():
            if mine.get(group, team) != team:
                raise Conflict(
                    f"group {group!r} is team {mine[group]!r} here but {team!r} in target {other.name!r} "
                    f"of the same source",
                    [{"field": "/options", "message": f"group {group!r} is {team!r} in {other.name!r}"}],
                )


def _mapped(options: Any) -> set[tuple[str, str, str]]:
    """(option, team, group) for each team ``options`` maps (TEAM_MAPPINGS)."""
    found = set()
    for key in TEAM_MAPPINGS:
        mapping = options.get(key) if isinstance(options, dict) else None
        if isinstance(mapping, dict):
            found |= {(key, str(team), str(group)) for team, group in mapping.items()}
    return found


async def _check_teams(session: AsyncSession, data: TargetIn, stored: Any = None) -> None:
    """422 for each team the options map that is unknown or inactive, as rules naming one are:
    the helpdesk's moves to its group would read back as a team that takes no tickets. Entries
    the target has as ``stored`` are not checked again: one saved before this check can still be
    disabled or get a new token."""
    named = sorted(_mapped(data.options) - _mapped(stored))
    if not named:
        return
    teams = await team_states(session)
    errors = [
        {"field": f"/options/{key}/{pointer_token(team)}", "message": f"{problem} {team!r}"}
        for key, team, _ in named
        if (problem := team_problem(teams, team)) is not None
    ]
    if errors:
        raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors)


async def targets_mapping(session: AsyncSession, team: str) -> list[str]:
    """The names of the targets whose groups map ``team`` (disabled ones too: GroupDirectory reads
    them back)."""
    rows = (await session.execute(select(WritebackTarget.name, WritebackTarget.options))).all()
    return sorted(name for name, options in rows if any(t == team for _, t, _ in _mapped(options)))


async def create_target(session: AsyncSession, data: TargetIn, actor: str) -> WritebackTarget:
    await lock_config(session)  # a target created meanwhile could map the same group to another team
    await _check_name_free(session, data.name)
    await _check_teams(session, data)
    await _check_groups_agree(session, data)
    now = utc_now()
    row = WritebackTarget(
        **data.model_dump(mode="json"), generation=new_generation(), created_at=now, updated_at=now
    )
    session.add(row)
    try:
        await session.flush()  # the id, and revision 1
    except IntegrityError as exc:  # the same name, created concurrently
        raise _name_taken(data.name) from exc
    record(session, actor, f"{ENTITY}.create", ENTITY, str(row.id), {"target": _audited(row)})
    return row


async def update_target(
    session: AsyncSession, target_id: int, data: TargetIn, *, expected: Expected, actor: str
) -> WritebackTarget:
    """Replace every field; a no-op keeps the revision (and the ETag clients hold), as for teams."""
    row = await get_target(session, target_id)
    check_expected(expected, row.revision, target_etag(row), row.generation)
    new = data.model_dump(mode="json")
    changes = {
        k: {"old": _shown(k, old), "new": _shown(k, new[k])}
        for k, old in _fields(row).items()
        if old != new[k]
    }
    secret_changed = row.secret != data.secret
    if not changes and not secret_changed:
        return row
    # Before the checks against the SLA policies that notify targets by name: a policy saved
    # meanwhile (it takes the same lock) could name a target this change renames.
    await lock_config(session)
    if "name" in changes:
        await _check_name_free(session, data.name, target_id)
        await _check_not_notified(session, row.name, "renamed")
    await _check_teams(session, data, row.options)
    await _check_groups_agree(session, data, target_id)
    cancelled = 0
    if "source" in changes or ("connector" in changes and data.connector != "webhook"):
        cancelled = await _cancel_waiting(session, row, data.source, data.connector)
    seen, generation = row.revision, row.generation
    for key, value in new.items():
        setattr(row, key, value)
    row.updated_at = utc_now()
    try:
        await session.flush()  # bumps ``revision`` WHERE revision = seen
    except IntegrityError as exc:  # renamed to a name taken concurrently
        raise _name_taken(data.name) from exc
    except StaleDataError as exc:
        raise _lost_race(target_id, generation, seen) from exc
    detail: dict[str, Any] = {"changes": changes, "secret_changed": secret_changed, "revision": row.revision}
    if cancelled:
        detail["cancelled_deliveries"] = cancelled
    record(session, actor, f"{ENTITY}.update", ENTITY, str(target_id), detail)
    return row


async def _cancel_waiting(session: AsyncSession, row: WritebackTarget, source: str, connector: str) -> int:
    """Fail the deliveries ``row`` still holds when it is re-pointed to ``source`` or turned into
    a helpdesk connector: they are the old source's tickets (or, a webhook's, any source's), which
    a helpdesk would take by number as its own (its 42 is not theirs). Listed as failed with the
    reason; a retry is refused (retry_delivery). The sender checks the source again (a delivery
    queued by a batch that read the target before this change committed is not seen here)."""
    if source != row.source:
        why = f"not sent: the target's source changed from {row.source!r} to {source!r}"
    else:
        why = f"not sent: the target changed from a {row.connector} to a {connector} connector"
    result = await session.execute(
        update(WritebackDelivery)
        .where(WritebackDelivery.target_id == row.id, WritebackDelivery.status == "pending")
        .values(status="failed", last_error=why)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _ticket_source(delivery: WritebackDelivery) -> str:
    """The source of the ticket ``delivery`` is about (as queued; the key's prefix for a body
    without one)."""
    try:
        document = orjson.loads(delivery.body)
    except orjson.JSONDecodeError:
        document = None
    return ticket_source(document) or delivery.ticket_key.split(":", 1)[0]


async def delete_target(session: AsyncSession, target_id: int, *, expected: Expected, actor: str) -> None:
    row = await get_target(session, target_id)
    check_expected(expected, row.revision, target_etag(row), row.generation)
    await lock_config(session)  # a policy naming it may be being saved (see update_target)
    await _check_not_notified(session, row.name, "deleted")
    seen, generation = row.revision, row.generation
    detail = {"target": _audited(row), "revision": seen}
    # Its deliveries go with it: none is sent to a target that is gone, and none waits to be
    # taken for a later target's (SQLite may give a new row a deleted row's id).
    await session.execute(delete(WritebackDelivery).where(WritebackDelivery.target_id == target_id))
    await session.delete(row)
    try:
        await session.flush()  # DELETE WHERE revision = seen: an edit since the check is not lost
    except StaleDataError as exc:
        raise _lost_race(target_id, generation, seen) from exc
    record(session, actor, f"{ENTITY}.delete", ENTITY, str(target_id), detail)


async def list_deliveries(
    session: AsyncSession, status: str | None, limit: int, before: int | None = None
) -> list[WritebackDelivery]:
    """Newest first, a keyset page: those older than the delivery ``before`` (ids only grow)."""
    query = select(WritebackDelivery).order_by(WritebackDelivery.id.desc()).limit(limit)
    if status is not None:
        query = query.where(WritebackDelivery.status == status)
    if before is not None:
        query = query.where(WritebackDelivery.id < before)
    return list((await session.scalars(query)).all())


async def retry_delivery(
    session: AsyncSession, delivery_id: int, actor: str, retention: timedelta | None = None
) -> WritebackDelivery:
    """Re-queue a failed delivery with fresh attempts; 409 for one that is not failed, whose target
    the sender refuses (an http:// helpdesk address), or that is
    older than ``retention`` (delivered rows are pruned after it, so a newer delivery of its ticket
    that it would undo may no longer be there to show it)."""
    row = await get_or_404(session, WritebackDelivery, delivery_id, f"delivery {delivery_id}")
    if row.status != "failed":
        raise Conflict(f"delivery {delivery_id} is {row.status}, only failed ones are retried")
    target = await session.get(WritebackTarget, row.target_id)
    refusal = None if target is None else clear_text_refusal(target.connector, target.url)
    if refusal is not None:
        # Queued again, it would fail at once for the same reason: say so now instead.
        raise Conflict(f"delivery {delivery_id} would be {refusal}")
    source = _ticket_source(row)
    if target is not None and target.connector != "webhook" and source != target.source:
        # The target was re-pointed since: its helpdesk would take the ticket number as its own.
        raise Conflict(
            f"delivery {delivery_id} is for a ticket of source {source!r}, but its target now "
            f"writes to source {target.source!r}'s helpdesk"
        )
    newer = await session.scalar(
        select(WritebackDelivery.id)
        .where(
            WritebackDelivery.target_id == row.target_id,
            WritebackDelivery.ticket_key == row.ticket_key,
            WritebackDelivery.id > row.id,
            WritebackDelivery.status != "failed",
        )
        .limit(1)
    )
    if newer is not None:
        # Sent now, it would land after them and undo them (an old priority over an escalation).
        raise Conflict(
            f"delivery {delivery_id} is older than delivery {newer} of the same ticket to the same "
            "target; retrying it would undo that one"
        )
    if retention is not None and row.created_at < cutoff(utc_now(), retention):
        raise Conflict(
            f"delivery {delivery_id} is older than the {retention.days}-day retention of delivered "
            "ones: a newer delivery of its ticket that retrying it would undo may have been pruned"
        )
    detail = {
        "target_id": row.target_id,
        "ticket_key": row.ticket_key,
        "kind": row.kind,
        "attempts": row.attempts,
        "last_error": row.last_error,
    }
    row.status, row.attempts, row.next_attempt_at = "pending", 0, utc_now()
    await session.flush()
    record(session, actor, f"{DELIVERY}.retry", DELIVERY, str(delivery_id), detail)
    return row
