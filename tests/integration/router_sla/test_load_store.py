"""``team_load`` and round-robin cursors in the database: a batch's deltas and cursors persist in
one statement each and add up across batches."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, select

from services.router.assignment import LoadConfig
from services.router.load.models import AssignmentCursor, TeamLoadBasis, TeamLoadRow
from services.router.load.store import basis_of, persist, prefetch, recount, stored_loads
from services.router.models import RouterTicket, Team
from services.router.rules import PoolTarget
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.events import Priority, TicketStatus, utc_now
from tests.integration.router_sla.helpers import new_id


async def round_robin_pool(sessions) -> tuple[str, PoolTarget]:
    """A run id, and a round-robin pool of three new teams of capacity 10."""
    run = new_id()[:8]
    teams = tuple(f"{name}-{run}" for name in ("a", "b", "c"))
    async with sessions() as session, session.begin():
        session.add_all(Team(name=t, capacity=10) for t in teams)
    return run, PoolTarget(teams=teams, strategy="round_robin")


async def test_deltas_and_cursors_add_up_over_batches(sessions):
    run, pool = await round_robin_pool(sessions)
    a, b, c = pool.teams
    config = LoadConfig()
    chosen: list[str] = []
    for batch in range(2):
        async with sessions() as session, session.begin():
            book = await prefetch(session, config, None)
            for n in range(4):
                team = book.choose(pool, f"{run}-{batch}-{n}").team
                assert team is not None
                chosen.append(team)
                book.move(None, (team, TicketStatus.NEW, Priority.P2))
            if batch == 1:  # one ticket of the first batch is solved: its team loses it
                book.move(
                    (chosen[0], TicketStatus.NEW, Priority.P2), (chosen[0], TicketStatus.SOLVED, Priority.P2)
                )
            await persist(session, book)
            assert not book.count_deltas and not book.cursor_updates
    assert chosen == [a, b, c, a, b, c, a, b]  # the cursor carried over from the first batch
    weight = config.priority_weights.get(Priority.P2, 1.0)
    async with sessions() as session:
        rows = {
            r.team: (r.open_count, r.open_weighted)
            for r in await session.scalars(select(TeamLoadRow).where(TeamLoadRow.team.in_((a, b, c))))
        }
        cursor = await session.get(AssignmentCursor, pool.label)
    assert rows == {a: (2, 2 * weight), b: (3, 3 * weight), c: (2, 2 * weight)}
    assert cursor is not None and cursor.last_team == b


async def test_rows_appear_for_a_new_team_and_for_a_team_without_a_teams_row(sessions):
    # prefetch creates rows only for teams it has not seen (a team added between batches), and
    # persist for a team no ``teams`` row names (a rule may route to any name).
    run = new_id()[:8]
    known, added, unlisted = (f"{name}-{run}" for name in ("known", "added", "unlisted"))
    async with sessions() as session, session.begin():
        session.add(Team(name=known, capacity=5))
    config = LoadConfig()
    async with sessions() as session, session.begin():
        book = await prefetch(session, config, None)
        assert book.stored is not None and known in book.stored and added not in book.stored
    async with sessions() as session, session.begin():
        session.add(Team(name=added, capacity=5))
    async with sessions() as session, session.begin():
        book = await prefetch(session, config, None)
        assert book.stored is not None and {known, added} <= book.stored and unlisted not in book.stored
        book.move(None, (added, TicketStatus.NEW, Priority.P2))
        book.move(None, (unlisted, TicketStatus.NEW, Priority.P2))
        await persist(session, book)
    async with sessions() as session:
        rows = {
            r.team: r.open_count
            for r in await session.scalars(
                select(TeamLoadRow).where(TeamLoadRow.team.in_((known, added, unlisted)))
            )
        }
    assert rows == {known: 0, added: 1, unlisted: 1}


async def test_on_postgresql_the_loads_are_locked_and_read_with_the_teams_in_one_statement(sessions):
    """On PostgreSQL the team loads are locked and read with the teams in one statement, then the
    cursors; the book holds what the separate reads give, schedules, inactive teams and cursors
    included. On SQLite the reads stay apart."""
    run = new_id()[:8]
    day, night, off = (f"{name}-{run}" for name in ("day", "night", "off"))
    hours = {"mon": "09:00-17:00"}
    shift = {
        "timezone": "Europe/Berlin",
        "tickets_per_agent": 3,
        "shifts": [{"name": "m", "hours": hours, "agents": 2}],
    }
    async with sessions() as session, session.begin():
        session.add_all(
            [
                Team(name=day, capacity=7, schedule=shift),
                Team(name=night, capacity=4),
                Team(name=off, active=False),
            ]
        )
        session.add(AssignmentCursor(pool=f"pool-{run}", last_team=night))
    config = LoadConfig()
    async with sessions() as session, session.begin():
        book = await prefetch(session, config, None)  # creates the team_load rows
        book.move(None, (night, TicketStatus.NEW, Priority.P1))
        await persist(session, book)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    engine = sessions.kw["bind"]
    at = utc_now()  # both read the shift's capacity at one instant, even across a shift's edge
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with sessions() as session, session.begin():
            one = await prefetch(session, config, f"spill-{run}", lock=True, at=at)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    async with sessions() as session, session.begin():
        apart = await prefetch(session, config, f"spill-{run}", lock=False, at=at)
    postgres = engine.dialect.name == "postgresql"
    # The spill team had no row: created, then locked and read again; the cursors last.
    assert len(statements) == (4 if postgres else 6), statements
    for book in (one, apart):
        assert book.counts[night] == 1 and book.weighted[night] == config.priority_weights[Priority.P1]
        assert book.capacities[night] == 4.0 and off in book.inactive and day not in book.inactive
        assert book.cursors[f"pool-{run}"] == night
        assert book.stored is not None and {day, night, off, f"spill-{run}"} <= book.stored
    assert (
        one.capacities == apart.capacities and one.counts == apart.counts and one.weighted == apart.weighted
    )
    assert one.cursors == apart.cursors and one.inactive == apart.inactive and one.stored == apart.stored


async def test_a_batch_that_waited_for_the_locks_sees_the_cursor_their_holder_wrote(sessions):
    """Two routers: the second's batch waits for the team_load locks the first holds, and then
    reads the loads and the round-robin cursor the first wrote, so the pool's next ticket goes to
    the next team.
    Read in the same statement as the locks, the cursor came from before the wait: the same team
    twice."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite serialises whole batches)")
    run, pool = await round_robin_pool(sessions)
    a, b, _ = pool.teams
    config = LoadConfig()
    async with sessions() as session, session.begin():
        await prefetch(session, config, None)  # the team_load rows exist from here on

    async def second_router() -> tuple[str | None, int]:
        async with sessions() as session, session.begin():
            book = await prefetch(session, config, None)
            return book.choose(pool, f"{run}-second").team, book.counts[a]

    async with sessions() as session, session.begin():
        book = await prefetch(session, config, None)
        first = book.choose(pool, f"{run}-first").team
        book.move(None, (first, TicketStatus.NEW, Priority.P2))
        await persist(session, book)
        waiting = asyncio.create_task(second_router())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the locks this transaction holds
    second, load_of_first = await asyncio.wait_for(waiting, timeout=10)
    assert (first, second) == (a, b)
    assert load_of_first == 1  # the locked rows as the holder left them, too


async def test_changing_the_counted_statuses_recounts_the_loads(sessions):
    """``team_load`` was kept by deltas under whatever ROUTER_LOAD_COUNTED_STATUSES said when each
    was applied: after a change, a ticket pending before it and solved after it took one from a
    team it never counted in (its load fell short of the tickets it holds, for good). The first
    batch under other counted statuses recounts the loads from the tickets."""
    run = new_id()[:8]
    team = f"recount-{run}"
    before, after = LoadConfig(), LoadConfig(counted_statuses=frozenset(TicketStatus) - {TicketStatus.SOLVED})
    async with sessions() as session, session.begin():
        session.add(Team(name=team, capacity=10))
        book = await prefetch(session, before, None)
        now = utc_now()
        for n, status in enumerate((TicketStatus.OPEN, TicketStatus.PENDING)):
            session.add(
                RouterTicket(
                    ticket_key=f"api:{run}-{n}",
                    source="api",
                    external_id=f"{run}-{n}",
                    status=status.value,
                    team=team,
                    priority=Priority.P3.value,
                    created_at=now,
                )
            )
            book.move(None, (team, status, Priority.P3))
        await persist(session, book)
    async with sessions() as session:
        assert (await stored_loads(session))[team][0] == 1  # pending did not count
    try:
        async with sessions() as session, session.begin():
            book = await prefetch(session, after, None)
            assert book.counts[team] == 2  # pending counts now
            pending = await session.get(RouterTicket, f"api:{run}-1")
            assert pending is not None
            pending.status = TicketStatus.SOLVED.value
            book.move((team, TicketStatus.PENDING, Priority.P3), (team, TicketStatus.SOLVED, Priority.P3))
            await persist(session, book)
        async with sessions() as session:
            assert (await stored_loads(session))[team] == (await recount(session, after))[team] == (1, 1.0)
    finally:
        async with sessions() as session, session.begin():
            book = await prefetch(session, before, None)  # back to the default for the other tests
            assert book.counts[team] == 1


async def test_a_recount_passes_over_rows_no_status_or_priority_names(sessions):
    """A row written around the router (an import, an older release) with a status or priority
    no member names failed the recount (ValueError), and with it every batch after a change of
    the counted statuses: it is not counted, and the rest is."""
    run = new_id()[:8]
    team = f"odd-{run}"
    now = utc_now()
    async with sessions() as session, session.begin():
        session.add(Team(name=team, capacity=10))
        for n, (status, priority) in enumerate([("assigned", "P3"), ("open", "P9"), ("open", "P1")]):
            session.add(
                RouterTicket(
                    ticket_key=f"api:{run}-{n}",
                    source="api",
                    external_id=f"{run}-{n}",
                    status=status,
                    team=team,
                    priority=priority,
                    created_at=now,
                )
            )
    weighted = LoadConfig(priority_weights={Priority.P1: 3.0})
    async with sessions() as session:
        assert (await recount(session, weighted))[team] == (
            2,
            4.0,
        )  # "P9" weighs 1, "assigned" is not open
    try:
        async with sessions() as session, session.begin():
            book = await prefetch(session, weighted, None)  # another basis: every team recounted
            assert book.counts[team] == 2
    finally:
        async with sessions() as session, session.begin():
            await prefetch(session, LoadConfig(), None)  # back to the default for the other tests


async def test_the_first_batch_of_a_database_without_teams_records_its_basis(tmp_path):
    """The first count of a basis on a database with no team yet (a new deployment, rules naming
    teams not created) updated no rows with an executemany of none: SQLAlchemy's bind error, so
    every routing batch failed until the ticket was dead-lettered. Found by the end-to-end bench."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    await asyncio.to_thread(upgrade, url)  # it runs an event loop of its own
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            book = await prefetch(session, LoadConfig(), None)
            assert book.counts == {}
        async with session_factory(engine)() as session:
            basis = await session.scalar(select(TeamLoadBasis.basis))
            assert basis == basis_of(LoadConfig())
    finally:
        await engine.dispose()


async def test_a_round_robin_pool_of_long_team_names_keeps_its_cursor(sessions):
    """A pool's cursor is stored under its label ("pool:" and the team names): ten teams of 100
    characters made a label longer than the column, and on PostgreSQL every batch that assigned
    from the pool failed (the events redelivered, and failing, for good)."""
    run = new_id()[:8]
    teams = tuple(f"{n}-{run}-".ljust(100, "x") for n in range(10))
    assert all(len(t) == 100 for t in teams)
    pool = PoolTarget(teams=teams, strategy="round_robin")
    async with sessions() as session, session.begin():
        session.add_all(Team(name=t, capacity=10) for t in teams)
    chosen = []
    for batch in range(2):
        async with sessions() as session, session.begin():
            book = await prefetch(session, LoadConfig(), None)
            team = book.choose(pool, f"{run}-{batch}").team
            assert team is not None
            chosen.append(team)
            book.move(None, (team, TicketStatus.NEW, Priority.P3))
            await persist(session, book)
    assert chosen == list(teams[:2])  # the cursor carried over
