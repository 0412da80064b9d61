"""``team_load`` in the database: prefetch-and-lock for a batch, atomic deltas, recount.

Concurrency (several routers on PostgreSQL): a batch first locks its ticket rows, then *every*
``team_load`` row in name order (``SELECT ... FOR UPDATE``), so two routers cannot both see
the last free slot of a team, and a single global lock order rules out deadlocks. The table
holds one row per team, so locking all of them is cheap. SQLite has no row locks; there we
take the database write lock up front (see :func:`take_write_lock`), which serialises batches.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from pydantic import ValidationError
from sqlalchemy import Table, bindparam, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.assignment import LoadConfig, TeamSchedule
from services.router.load.book import LoadBook
from services.router.load.models import AssignmentCursor, TeamLoadBasis, TeamLoadRow
from services.router.models import RouterTicket, Team
from services.router.teams.schemas import ScheduleDoc
from shared.db.dialect import conflict_insert, is_postgres
from shared.events import Priority, utc_now

log = logging.getLogger(__name__)


async def take_write_lock(session: AsyncSession) -> None:
    """On SQLite, make the transaction a writer now, so what it reads next cannot go stale.

    pysqlite opens the transaction lazily at the first write; a no-op write takes the database
    lock before any read of the batch. PostgreSQL uses row locks instead (no-op here).
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("DELETE FROM team_load WHERE 1 = 0"))


async def insert_ignore(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    await session.execute(conflict_insert(session, table).values(rows).on_conflict_do_nothing())


# On PostgreSQL one round trip locks the team_load rows in name order and reads them with the
# teams' capacities (MATERIALIZED: the CTE runs once, whether or not anything else reads it); three
# statements became two. The teams come from the statement's snapshot, taken before any wait for
# the locks, as the separate read before the lock did. The cursors stay a statement of their own,
# after the locks: only a snapshot taken then sees what the router that held them last wrote.
_LOCK_LOADS_AND_READ_TEAMS = text(
    """
    WITH locked AS MATERIALIZED (
        SELECT team, open_count, open_weighted FROM team_load ORDER BY team FOR UPDATE
    )
    SELECT
        (SELECT json_agg(json_build_array(team, open_count, open_weighted)) FROM locked),
        (SELECT json_agg(json_build_array(name, active, capacity, schedule)) FROM teams)
    """
)


@dataclass(frozen=True)
class TeamCapacity:
    """What a batch needs of a team: whether it takes tickets, and how many it can carry."""

    name: str
    active: bool
    capacity: int
    schedule: dict[str, Any] | None


Loads = dict[str, tuple[int, float]]
Teams = dict[str, TeamCapacity]


async def _lock_loads_and_read_teams(session: AsyncSession) -> tuple[Loads, Teams]:
    row = (await session.execute(_LOCK_LOADS_AND_READ_TEAMS)).one()
    loads, teams = (orjson.loads(v) if isinstance(v, str | bytes) else (v or []) for v in row)
    return (
        {team: (int(count), float(weighted)) for team, count, weighted in loads},
        {team[0]: TeamCapacity(*team) for team in teams},
    )


async def _read_loads_and_teams(session: AsyncSession, lock: bool) -> tuple[Loads, Teams]:
    if lock and is_postgres(session):
        return await _lock_loads_and_read_teams(session)
    teams = (await session.scalars(select(Team))).all()
    rows = (await session.scalars(select(TeamLoadRow).order_by(TeamLoadRow.team))).all()
    return (
        {r.team: (r.open_count, r.open_weighted) for r in rows},
        {t.name: TeamCapacity(t.name, t.active, t.capacity, t.schedule) for t in teams},
    )


async def prefetch(
    session: AsyncSession,
    config: LoadConfig,
    overflow_team: str | None,
    extra_teams: Iterable[str] = (),
    lock: bool = True,
    at: datetime | None = None,
) -> LoadBook:
    """``at``: when scheduled teams' capacities are taken (default: now), once for the batch."""
    loads, teams = await _read_loads_and_teams(session, lock)
    names = set(teams) | set(extra_teams) | ({overflow_team} if overflow_team else set())
    now = utc_now()
    missing = names - set(loads)
    if missing:
        # Rare (a new team): create its row and lock again. Every existing row is locked already,
        # so a second router waits on those first: the global lock order still holds.
        await insert_ignore(
            session,
            TeamLoadRow.__table__,  # type: ignore[arg-type]
            [{"team": n, "open_count": 0, "open_weighted": 0.0, "updated_at": now} for n in sorted(missing)],
        )
        loads, teams = await _read_loads_and_teams(session, lock)
    cursors, basis = await _cursors_and_basis(session)
    wanted = basis_of(config)
    if lock and basis != wanted:
        loads = await _recount_loads(session, config, loads, wanted, now, first=basis is None)
    return LoadBook(
        config=config,
        capacities={name: capacity(team, at or now) for name, team in teams.items()},
        inactive=frozenset(name for name, team in teams.items() if not team.active),
        counts={team: count for team, (count, _) in loads.items()},
        weighted={team: weighted for team, (_, weighted) in loads.items()},
        cursors=cursors,
        overflow_team=overflow_team,
        stored=frozenset(loads),
    )


# The cursors' statement also reads the basis, under a key no pool label is (they start "pool:").
_BASIS_KEY = ""
_CURSORS = cast(Table, AssignmentCursor.__table__)
_BASIS = cast(Table, TeamLoadBasis.__table__)
# Core statements built once (every batch runs them): building a statement and its cache key cost
# more CPU than running it, and the ORM's execution path adds as much for rows read as tuples.
_CURSORS_AND_BASIS = select(_CURSORS.c.pool, _CURSORS.c.last_team).union_all(
    select(literal(_BASIS_KEY), _BASIS.c.basis).where(_BASIS.c.id == 1)
)


async def _cursors_and_basis(session: AsyncSession) -> tuple[dict[str, str], str | None]:
    """The round-robin cursors and what ``team_load`` counts, in one statement after the locks: a
    router that recounted under other statuses held them, so what it wrote is seen here."""
    rows = await session.execute(_CURSORS_AND_BASIS)
    cursors: dict[str, str] = {pool: team for pool, team in rows.all()}
    return cursors, cursors.pop(_BASIS_KEY, None)


def basis_of(config: LoadConfig) -> str:
    """What counters kept under ``config`` count: its statuses and priority weights."""
    statuses = ",".join(sorted(status.value for status in config.counted_statuses))
    weights = ",".join(f"{p.value}={config.priority_weights.get(p, 1.0):g}" for p in Priority)
    return f"counted={statuses};weights={weights}"


async def _recount_loads(
    session: AsyncSession, config: LoadConfig, loads: Loads, basis: str, now: datetime, first: bool
) -> Loads:
    """Set every team's counters to a recount under ``config`` and record its basis: the first
    batch after ROUTER_LOAD_COUNTED_STATUSES changed (or after the upgrade that added the basis).
    The team_load rows are locked, so no batch is changing tickets meanwhile; a router still on
    the old statuses (a rolling deploy) recounts back for its own batches, exactly each time."""
    counted = await recount(session, config)
    why = "the first count of their basis" if first else "what they count changed"
    log.log(
        logging.INFO if first else logging.WARNING, "team loads recounted: %s", why, extra={"basis": basis}
    )
    load = cast(Table, TeamLoadRow.__table__)
    zero = {"open_count": 0, "open_weighted": 0.0, "updated_at": now}
    await insert_ignore(session, load, [{"team": t, **zero} for t in sorted(set(counted) - set(loads))])
    fresh = {team: counted.get(team, (0, 0.0)) for team in sorted(set(loads) | set(counted))}
    if fresh:  # none yet (no team, no ticket of one): an executemany of no rows is a bind error
        await session.execute(
            update(load)
            .where(load.c.team == bindparam("b_team"))
            .values(open_count=bindparam("b_count"), open_weighted=bindparam("b_weighted"), updated_at=now),
            [{"b_team": t, "b_count": n, "b_weighted": weighted} for t, (n, weighted) in fresh.items()],
        )
    upsert = conflict_insert(session, TeamLoadBasis).values(id=1, basis=basis, updated_at=now)
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=["id"], set_={"basis": upsert.excluded.basis, "updated_at": now}
        )
    )
    return fresh


def capacity(team: TeamCapacity, at: datetime) -> float:
    """Agents on shift x tickets per agent when the team has a schedule, else its fixed capacity.

    Evaluated once per team per batch, so a ticket only reads a number. The schedule is parsed
    once per stored document, not per batch (with its calendars' memory of the days they worked
    out): parsing was ~1 ms a batch for a team of three shifts, seconds for a large one.
    """
    if team.schedule is None:
        return float(team.capacity)
    document = orjson.dumps(team.schedule, option=orjson.OPT_SORT_KEYS).decode()
    schedule = _parsed_schedule(team.name, team.active, document)
    if schedule is None:  # written around the API; the fixed number beats failing every batch
        log.warning("team %s: invalid stored schedule, using capacity %d", team.name, team.capacity)
        return float(team.capacity)
    return schedule.capacity_at(at)


@functools.lru_cache(maxsize=1024)
def _parsed_schedule(name: str, active: bool, document: str) -> TeamSchedule | None:
    try:
        schedule = ScheduleDoc.model_validate(orjson.loads(document)).for_team(name, active)
        schedule.shift_calendars  # noqa: B018  # built here, where a failure is caught, not per batch
    except ValidationError:
        return None
    return schedule


_LOAD = cast(Table, TeamLoadRow.__table__)
_ADD_TO_LOADS = (
    update(_LOAD)
    .where(_LOAD.c.team == bindparam("b_team"))
    .values(
        open_count=_LOAD.c.open_count + bindparam("b_count"),
        open_weighted=_LOAD.c.open_weighted + bindparam("b_weighted"),
        updated_at=bindparam("b_now"),
    )
)


async def persist(session: AsyncSession, book: LoadBook) -> None:
    """Apply the batch's deltas atomically (``x = x + d``): one executemany for every touched team
    (pipelined by the driver: a round trip per batch, not per team) and one upsert for the cursors.
    The rows are already locked (see :func:`prefetch`), so the statement order cannot deadlock."""
    touched = book.touched
    if touched:
        now = utc_now()
        # Rows prefetch saw exist; a team it did not know (a rule naming a team that has no
        # ``teams`` row) gets its row now.
        await insert_ignore(
            session,
            _LOAD,
            [
                {"team": t, "open_count": 0, "open_weighted": 0.0, "updated_at": now}
                for t in touched
                if book.stored is None or t not in book.stored
            ],
        )
        # A Core table, not the entity: a list of parameters is then a plain executemany.
        await session.execute(
            _ADD_TO_LOADS,
            [
                {
                    "b_team": team,
                    "b_count": book.count_deltas.get(team, 0),
                    "b_weighted": book.weight_deltas.get(team, 0.0),
                    "b_now": now,
                }
                for team in touched
            ],
        )
    if book.cursor_updates:
        upsert = conflict_insert(session, AssignmentCursor).values(
            [{"pool": pool, "last_team": team} for pool, team in sorted(book.cursor_updates.items())]
        )
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=["pool"], set_={"last_team": upsert.excluded.last_team}
            )
        )
    book.count_deltas.clear()
    book.weight_deltas.clear()
    book.cursor_updates.clear()


async def recount(session: AsyncSession, config: LoadConfig) -> dict[str, tuple[int, float]]:
    """Team -> (count, weighted) recomputed from ``router_tickets`` (for checks and repair)."""
    rows = await session.execute(
        select(RouterTicket.team, RouterTicket.status, RouterTicket.priority, func.count())
        .where(RouterTicket.team.is_not(None))
        .group_by(RouterTicket.team, RouterTicket.status, RouterTicket.priority)
    )
    # Compared as text: a row written around the router (an import, an older release) with a
    # status or priority no member names must not fail the recount, and with it every batch.
    counted = {status.value for status in config.counted_statuses}
    weights = {priority.value: weight for priority, weight in config.priority_weights.items()}
    out: dict[str, tuple[int, float]] = {}
    for team, status, priority, n in rows.all():
        if team is None or status not in counted:
            continue
        count, weighted = out.get(team, (0, 0.0))
        out[team] = (count + n, weighted + n * weights.get(priority, 1.0))
    return out


async def stored_loads(session: AsyncSession) -> Mapping[str, tuple[int, float]]:
    rows = (await session.scalars(select(TeamLoadRow))).all()
    return {r.team: (r.open_count, r.open_weighted) for r in rows}
