"""Teams: create, read, change, deactivate or delete; every change audited, revision-checked.

A team the live rule set, a live SLA policy's escalation or a write-back target's ``groups`` names
can be neither deactivated nor deleted (409 naming the rules, policies or targets): routing,
escalating or reading a helpdesk's move back to it would silently fail. A
team that tickets were routed to is deactivated rather than deleted, so the history keeps
pointing at a real row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.config_lock import lock_config
from services.router.errors import Conflict, get_or_404
from services.router.models import RouterTicket, RoutingDecision, Team
from services.router.rulesets.service import live, team_references
from services.router.slas.service import policies_reassigning_to
from services.router.teams.schemas import TeamCreate, TeamFields, TeamOut
from services.router.writeback.service import targets_mapping
from shared.db.audit import record
from shared.events import utc_now
from shared.http.preconditions import Expected, Stale, check_expected, etag, new_generation

FIELDS = tuple(TeamFields.model_fields)


def team_etag(row: Team) -> str:
    return etag(f"team-{row.name}", row.revision, row.generation)


def to_out(row: Team) -> TeamOut:
    return TeamOut.model_validate(row, from_attributes=True)


async def list_teams(session: AsyncSession, active: bool | None = None) -> list[Team]:
    query = select(Team).order_by(Team.name)
    if active is not None:
        query = query.where(Team.active == active)
    return list((await session.scalars(query)).all())


async def get_team(session: AsyncSession, name: str) -> Team:
    return await get_or_404(session, Team, name, f"team {name!r}")


async def create_team(session: AsyncSession, data: TeamCreate, actor: str) -> Team:
    await lock_config(session)  # every team change, like the rule-set and SLA writers
    if await session.get(Team, data.name) is not None:
        raise Conflict(f"team {data.name!r} exists", [{"field": "/name", "message": "already exists"}])
    # "Billing" beside "billing" would be two queues, two sets of gauges and rules naming either:
    # a typo, not a new team. Names are ASCII, which SQL's lower() folds as Python's does.
    twin = await session.scalar(select(Team.name).where(func.lower(Team.name) == data.name.lower()).limit(1))
    if twin is not None:
        raise Conflict(
            f"team {twin!r} exists; names that differ only in case are one team",
            [{"field": "/name", "message": f"differs from team {twin!r} only in case"}],
        )
    now = utc_now()
    row = Team(
        name=data.name,
        revision=1,
        generation=new_generation(),
        created_at=now,
        updated_at=now,
        **data.model_dump(mode="json", include=set(FIELDS)),
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # created concurrently
        raise Conflict(
            f"team {data.name!r} exists", [{"field": "/name", "message": "already exists"}]
        ) from exc
    record(session, actor, "team.create", "team", data.name, {"team": data.model_dump(mode="json")})
    return row


async def _references(session: AsyncSession, name: str) -> str | None:
    """Why the team cannot go (the live rules, SLA policies or write-back targets that name it), or None."""
    found = []
    ruleset = await live(session)
    places = team_references(ruleset).get(name)
    if places:
        ids = sorted({rule_id for _, rule_id in places})
        found.append(
            f"team {name!r} is used by the live rule set (version {ruleset.version}): {', '.join(ids)}"
            "; change those rules first"
        )
    policies = await policies_reassigning_to(session, name)
    if policies:
        found.append(
            f"team {name!r} is the reassign_to team of SLA policies {', '.join(policies)}"
            "; change those policies first"
        )
    targets = await targets_mapping(session, name)
    if targets:
        found.append(
            f"team {name!r} is mapped to a helpdesk group by write-back targets "
            f"{', '.join(map(repr, targets))}; change their groups first"
        )
    return "; ".join(found) or None


def _check_revision(row: Team, expected: Expected) -> None:
    check_expected(expected, row.revision, team_etag(row), row.generation)


async def _guarded_update(session: AsyncSession, row: Team, values: dict[str, Any]) -> None:
    """UPDATE ... WHERE revision = seen: a concurrent writer makes it match no row."""
    result = await session.execute(
        update(Team)
        .where(Team.name == row.name, Team.generation == row.generation, Team.revision == row.revision)
        .values(**values, revision=row.revision + 1, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(row)
        raise Stale(team_etag(row))
    await session.refresh(row)


async def update_team(
    session: AsyncSession, name: str, changes: dict[str, Any], *, expected: Expected, actor: str
) -> Team:
    """Apply ``changes`` (a subset of the team's fields); a no-op keeps the revision."""
    await lock_config(session)  # before reading the references a deactivation checks
    row = await get_team(session, name)
    _check_revision(row, expected)
    diff = {k: {"old": getattr(row, k), "new": v} for k, v in changes.items() if getattr(row, k) != v}
    if not diff:
        return row
    if changes.get("active") is False:
        using = await _references(session, name)
        if using:
            raise Conflict(using)
    await _guarded_update(session, row, changes)
    record(session, actor, "team.update", "team", name, {"changes": diff, "revision": row.revision})
    return row


async def delete_team(session: AsyncSession, name: str, *, expected: Expected, actor: str) -> str:
    """'deleted', or 'deactivated' when tickets were routed to the team ('unchanged', and nothing
    audited, when it was inactive already)."""
    await lock_config(session)  # before reading the references that keep the team
    row = await get_team(session, name)
    _check_revision(row, expected)
    using = await _references(session, name)
    if using:
        raise Conflict(using)
    routed = await session.scalar(
        select(
            or_(
                exists().where(RouterTicket.team == name),
                exists().where(or_(RoutingDecision.team == name, RoutingDecision.previous_team == name)),
            )
        )
    )
    detail: dict[str, Any]  # the audit's: what changed, or what the deletion removed
    if routed:
        if not row.active:
            return "unchanged"  # as a key revoked already: no change, no audit entry claiming one
        await _guarded_update(session, row, {"active": False})
        outcome = "deactivated"
        detail = {"changes": {"active": {"old": True, "new": False}}, "revision": row.revision}
    else:
        detail = {"team": {"name": name, **{k: getattr(row, k) for k in FIELDS}}, "revision": row.revision}
        result = await session.execute(
            delete(Team)
            .where(Team.name == name, Team.generation == row.generation, Team.revision == row.revision)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Stale(team_etag(row))
        session.expunge(row)
        outcome = "deleted"
    action = "team.delete" if outcome == "deleted" else "team.deactivate"
    record(session, actor, action, "team", name, {"outcome": outcome, **detail})
    return outcome
