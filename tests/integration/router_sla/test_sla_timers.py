"""SLA clocks through the real handler and timer scanner on a real database, with a fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from services.router.escalation.models import FiredTimer
from services.router.models import RouterTicket, RoutingDecision
from services.router.teams import service as teams
from services.router.teams.schemas import TeamCreate
from shared.events import EventType, Priority, TicketSnapshot, TicketStatus
from tests.integration.router_sla.helpers import (
    config,
    event,
    new_id,
    sla_rig,
    utc,
)


async def ticket(sessions, key: str) -> RouterTicket:
    async with sessions() as session:
        row = await session.get(RouterTicket, key)
        assert row is not None
        return row


async def kinds(sessions, key: str) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            select(RoutingDecision.kind).where(RoutingDecision.ticket_key == key).order_by(RoutingDecision.id)
        )
        return list(rows.all())


async def test_friday_evening_ticket_gets_monday_deadlines_and_pending_pauses(sessions, settings_kwargs):
    cfg = config()
    friday_evening = utc(2026, 6, 5, 17, 30)  # 19:30 in Berlin, after hours
    async with sla_rig(sessions, settings_kwargs, cfg, friday_evening) as rig:
        handler = rig.handler
        ext = new_id()
        await handler([event(ext, friday_evening)])
        row = await ticket(sessions, f"api:{ext}")
        # Monday 08 Jun 09:00 Berlin (07:00 UTC) + 2 h / + 8 h of business time.
        assert row.sla["first_response_due"] == "2026-06-08T09:00:00Z"
        assert row.sla["resolution_due"] == "2026-06-08T15:00:00Z"
        assert row.sla["policy"] == "standard" and row.sla["paused"] is False
        assert row.sla_next_due_at == utc(2026, 6, 8, 8, 30)  # first-response warning at 75 %

        # Monday 10:00 Berlin the requester is asked something: pending pauses both clocks.
        monday_10 = utc(2026, 6, 8, 8, 0)
        await handler([event(ext, monday_10, TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)])
        row = await ticket(sessions, f"api:{ext}")
        assert row.sla["paused"] is True and row.sla["resolution_due"] is None and row.sla_next_due_at is None
        # Tuesday 09:00 Berlin the answer arrives: 1 h of 8 was used, 7 h left -> Tuesday 16:00 Berlin.
        tuesday_9 = utc(2026, 6, 9, 7, 0)
        await handler([event(ext, tuesday_9, TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)])
        row = await ticket(sessions, f"api:{ext}")
        assert row.sla["paused"] is False
        assert row.sla["resolution_due"] == "2026-06-09T14:00:00Z"
        assert row.sla["first_response_due"] == "2026-06-09T08:00:00Z"  # 1 h of 2 h left

        # Solved, then reopened: the resolution clock continues from consumed time (new cycle).
        tuesday_10 = utc(2026, 6, 9, 8, 0)
        await handler([event(ext, tuesday_10, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
        row = await ticket(sessions, f"api:{ext}")
        assert row.sla["resolution_due"] is None
        # The first-response warning fell due at 09:30 Berlin, before the solve, and no scanner
        # ran in this test to fire it: it is owed, and the timer stays for the scanner.
        assert row.sla_next_due_at == utc(2026, 6, 9, 7, 30)
        wednesday_9 = utc(2026, 6, 10, 7, 0)
        await handler([event(ext, wednesday_9, TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)])
        row = await ticket(sessions, f"api:{ext}")
        # 2 h consumed (Mon 9-10, Tue 9-10), 6 h left from Wednesday 09:00 Berlin.
        assert row.sla["resolution_due"] == "2026-06-10T13:00:00Z"
        assert row.sla_clock is not None and row.sla_clock["clock"]["cycle"] == 1


async def test_warning_and_breach_fire_once_with_two_concurrent_scanners(sessions, settings_kwargs):
    cfg = config(on_breach=[{"action": "raise_priority"}, {"action": "add_tag", "tag": "sla-breached"}])
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        clock = rig.clock
        key = await rig.create(start)
        scanners = [rig.scanner() for _ in range(2)]

        clock.now = utc(2026, 6, 8, 8, 31)  # past the first-response warning (1 h 30 of 2 h)
        fired = await asyncio.gather(*(s.scan_once() for s in scanners))
        assert sum(fired) == 1
        assert (await ticket(sessions, key)).sla["warning_sent"] is True

        clock.now = utc(2026, 6, 8, 9, 5)  # past the first-response deadline
        for _ in range(3):  # repeated concurrent scans fire nothing more
            await asyncio.gather(*(s.scan_once() for s in scanners))
        row = await ticket(sessions, key)
        assert row.sla["breached"] is True
        assert row.priority == Priority.P2.value  # raised one step by the breach action
        assert "sla-breached" in row.snapshot["tags"]
        history = await kinds(sessions, key)
        assert history.count(EventType.SLA_WARNING.value) == 1
        assert history.count(EventType.SLA_BREACHED.value) == 1
        assert history.count(EventType.TICKET_ESCALATED.value) == 1
        async with sessions() as session:
            timers = await session.scalar(
                select(func.count()).select_from(FiredTimer).where(FiredTimer.ticket_key == key)
            )
        assert timers == 2
        # P2 targets now apply (1 h first response already exceeded; resolution 4 h from Monday 09:00).
        assert row.sla["resolution_due"] == "2026-06-08T11:00:00Z"


async def test_escalations_reassign_only_to_active_teams(sessions, settings_kwargs, caplog):
    """A policy's reassign_to team may be gone by the time a timer fires (or was never checked):
    the scanner assigned tickets to whatever was named. Such a reassignment is skipped and logged,
    the last one to an active team wins, and the other actions still apply."""
    active, retired = f"esc-{new_id()[:8]}", f"esc-{new_id()[:8]}"
    async with sessions() as session, session.begin():
        await teams.create_team(session, TeamCreate(name=active), "test")
        await teams.create_team(session, TeamCreate(name=retired), "test")
    cfg = config(
        on_breach=[
            {"action": "raise_priority"},
            {"action": "reassign_to", "team": active},
            {"action": "reassign_to", "team": retired},
            {"action": "reassign_to", "team": "never-existed"},
        ]
    )
    async with sessions() as session, session.begin():  # after the policy was saved
        await teams.update_team(session, retired, {"active": False}, expected=None, actor="test")
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        key = await rig.create(start)
        rig.clock.now = utc(2026, 6, 8, 9, 5)  # past the first-response warning and deadline
        assert await rig.scanner().scan_once() == 2
    row = await ticket(sessions, key)
    assert (row.team, row.priority, row.sla["breached"]) == (active, Priority.P2.value, True)
    async with sessions() as session:
        breached = await session.scalar(
            select(RoutingDecision).where(
                RoutingDecision.ticket_key == key, RoutingDecision.kind == EventType.SLA_BREACHED.value
            )
        )
    assert breached is not None
    assert f"reassign_to {retired}, never-existed skipped: not an active team" in breached.reasons
    [logged] = [r for r in caplog.records if "reassign_to skipped" in r.getMessage()]
    assert (logged.levelname, logged.ticket_key, logged.teams) == (
        "WARNING",
        key,
        f"{retired}, never-existed",
    )
    assert await kinds(sessions, key) == [
        EventType.TICKET_ROUTED.value,
        EventType.SLA_WARNING.value,
        EventType.SLA_BREACHED.value,
        EventType.TICKET_ESCALATED.value,
    ]


async def test_a_ticket_row_the_scanner_cannot_read_does_not_hold_up_the_others(sessions, settings_kwargs):
    """A stored ticket this code cannot read (an older version's, edited by hand) used to fail the
    whole scan, every time, and so every other ticket's timers. Its own timers are switched off,
    counted and logged; the rest fire."""
    cfg = config()
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        broken, healthy = new_id(), new_id()
        await rig.handler([event(broken, start)])
        await rig.handler([event(healthy, start + timedelta(minutes=1))])
        async with sessions() as session, session.begin():
            row = await session.get(RouterTicket, f"api:{broken}")
            assert row is not None and row.sla_next_due_at is not None
            row.snapshot = {"subject": "stored by hand", "no_such_field": 1}  # and no external_id

        before = REGISTRY.get_sample_value("router_sla_unreadable_tickets_total") or 0.0
        rig.clock.now = utc(2026, 6, 8, 8, 40)  # past both tickets' first-response warnings
        assert await rig.scanner().scan_once() == 1
        assert await kinds(sessions, f"api:{healthy}") == [
            EventType.TICKET_ROUTED.value,
            EventType.SLA_WARNING.value,
        ]
        assert await kinds(sessions, f"api:{broken}") == [EventType.TICKET_ROUTED.value]
        assert (await ticket(sessions, f"api:{broken}")).sla_next_due_at is None  # not picked again
        assert REGISTRY.get_sample_value("router_sla_unreadable_tickets_total") == before + 1


async def test_a_breach_tag_does_not_push_a_ticket_past_the_most_tags_a_snapshot_holds(
    sessions, settings_kwargs
):
    """A ticket may hold 200 tags; a breach's add_tag made it 201, a snapshot that no longer
    validates: the scanner then switched the ticket's timers off as unreadable (its resolution
    breach never fired) and its next partial update failed to route. The tag is skipped, and said."""
    cfg = config(on_breach=[{"action": "raise_priority"}, {"action": "add_tag", "tag": "sla-breached"}])
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        ext = new_id()
        key = f"api:{ext}"
        await rig.handler([event(ext, start, tags=[f"t{i}" for i in range(200)])])
        rig.clock.now = utc(2026, 6, 8, 9, 5)  # past the first-response warning and deadline
        await rig.scanner().scan_once()
        row = await ticket(sessions, key)
        assert TicketSnapshot.model_validate(row.snapshot).tags == [f"t{i}" for i in range(200)]
        assert row.priority == Priority.P2.value  # the other action applies
        async with sessions() as session:
            breached = await session.scalar(
                select(RoutingDecision).where(
                    RoutingDecision.ticket_key == key, RoutingDecision.kind == EventType.SLA_BREACHED.value
                )
            )
        assert breached is not None
        assert any("sla-breached" in reason and "skipped" in reason for reason in breached.reasons)
        rig.clock.now = utc(2026, 6, 8, 11, 5)  # past the P2 resolution deadline (4 h from 09:00)
        await rig.scanner().scan_once()
        assert (await kinds(sessions, key)).count(EventType.SLA_BREACHED.value) == 2


async def test_a_warning_names_the_deadline_it_warns_of(sessions, settings_kwargs):
    """A warning's reasons (the note a helpdesk gets) said 'first response at risk: due 10:30' in
    Berlin, the instant the warning fell due at 75 %, while the first response was due at 11:00."""
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin: first response due 11:00, warned at 10:30
    async with sla_rig(sessions, settings_kwargs, config(), start) as rig:
        key = await rig.create(start)
        owed_ext = new_id()
        await rig.handler([event(owed_ext, start)])
        # Another one paused after its warning fell due, the scanner behind: the warning is owed.
        await rig.handler(
            [event(owed_ext, utc(2026, 6, 8, 8, 40), TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)]
        )
        rig.clock.now = utc(2026, 6, 8, 8, 45)
        await rig.scanner().scan_once()
        for ticket_key in (key, f"api:{owed_ext}"):
            async with sessions() as session:
                warning = await session.scalar(
                    select(RoutingDecision).where(
                        RoutingDecision.ticket_key == ticket_key,
                        RoutingDecision.kind == EventType.SLA_WARNING.value,
                    )
                )
            assert warning is not None
            assert warning.reasons == [
                "SLA first response at risk: warning at 2026-06-08T08:30:00+00:00, "
                "due 2026-06-08T09:00:00+00:00 (policy standard)"
            ]
        # Solved in time: no timer left for the other tests' scans of this shared database.
        solved = event(
            key.removeprefix("api:"), rig.clock.now, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED
        )
        await rig.handler([solved])
        assert (await ticket(sessions, key)).sla_next_due_at is None
