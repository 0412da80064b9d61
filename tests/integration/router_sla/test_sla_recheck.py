"""Editing a policy or a calendar moves the deadlines of the open tickets on it, without waiting for
their next event: the change marks them due (slas/recheck.py), the scanner recomputes them under
the new configuration and publishes the moved deadlines once, with the reason.

Real handler and scanner on the real databases, a fake clock; office hours Mon-Fri 09-17 Berlin.
The tests run a year after the other SLA tests' and solve their tickets at the end: the database is
shared, and a scan fires every due timer in it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.escalation.scanner import EscalationScanner, ScannerOptions
from services.router.models import RouterTicket, RoutingDecision
from services.router.sla import BusinessCalendar
from services.router.slas import service as sla_service
from services.router.slas.recheck import recheck_clocks_on
from services.router.slas.tracking import SlaConfig
from shared.events import EventType, TicketStatus, utc_now
from tests.integration.router_sla.helpers import (
    OFFICE,
    SlaRig,
    config,
    event,
    new_id,
    office_monday_after,
    sla_handler,
    sla_rig,
    utc,
)

MONDAY_9 = utc(2027, 6, 7, 7, 0)  # 09:00 Berlin (CEST)


async def ticket(sessions: async_sessionmaker[AsyncSession], key: str) -> RouterTicket:
    async with sessions() as session:
        row = await session.get(RouterTicket, key)
        assert row is not None
        return row


async def decisions(sessions: async_sessionmaker[AsyncSession], key: str) -> list[RoutingDecision]:
    async with sessions() as session:
        query = select(RoutingDecision).where(RoutingDecision.ticket_key == key).order_by(RoutingDecision.id)
        return list((await session.scalars(query)).all())


async def mark(sessions: async_sessionmaker[AsyncSession], kind: Any, name: str, at: datetime) -> None:
    async with sessions() as session, session.begin():
        await recheck_clocks_on(session, kind, name, at)


async def solve(rig: SlaRig, key: str) -> None:
    """Stop the ticket's timers, so that no later test's scan fires them."""
    ext = key.removeprefix("api:")
    await rig.handler([event(ext, rig.clock.now, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
    assert (await ticket(rig.sessions, key)).sla_next_due_at is None


async def raise_to_p2(rig: SlaRig, key: str, at: datetime) -> None:
    """An event that changes the ticket's state (the source raised its priority), routed by the
    rig's handler, whose configuration is the first one (version 0)."""
    ext = key.removeprefix("api:")
    await rig.handler([event(ext, at, TicketStatus.OPEN, EventType.TICKET_UPDATED, priority="P2")])
    assert (await ticket(rig.sessions, key)).priority == "P2"


P2_SHORTER = {
    "P3": {"first_response": 120, "resolution": 240},
    "P2": {"first_response": 60, "resolution": 120},
}


def shorter(version: int) -> SlaConfig:
    """The rig's policy with the P3 resolution target cut from 8 h to 4 h."""
    cfg = config(targets={"P3": {"first_response": 120, "resolution": 240}})
    return SlaConfig(cfg.policies, cfg.calendars, version=version)


async def test_a_shortened_target_moves_the_deadline_of_open_tickets_once(sessions, settings_kwargs):
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        key = await rig.create(MONDAY_9)
        before = await ticket(sessions, key)
        assert before.sla["resolution_due"] == "2027-06-07T15:00:00Z"  # 8 h: Monday 17:00 Berlin
        first_timer = before.sla_next_due_at  # the first-response warning, 10:30 Berlin

        now = utc(2027, 6, 7, 8, 0)  # 10:00 Berlin
        rig.clock.now = now
        await mark(sessions, "policy", "another-policy", now)
        await mark(sessions, "calendar", "another-calendar", now)
        assert (await ticket(sessions, key)).sla_next_due_at == first_timer  # not on those

        rig.cfg = shorter(version=1)
        await mark(sessions, "policy", "standard", now)
        assert (await ticket(sessions, key)).sla_next_due_at == now
        scanner = rig.scanner()
        await scanner.scan_once()

        after = await ticket(sessions, key)
        assert after.sla["resolution_due"] == "2027-06-07T11:00:00Z"  # 4 h: Monday 13:00 Berlin
        assert after.sla_next_due_at == first_timer  # the next timer again, not "now"
        assert after.revision == before.revision + 1
        recheck = (await decisions(sessions, key))[-1]
        assert recheck.kind == EventType.TICKET_STATE_CHANGED.value
        assert recheck.reasons == [
            "SLA recomputed under configuration version 1",
            "resolution due 2027-06-07T15:00:00+00:00 -> 2027-06-07T11:00:00+00:00",
            "resolution warning 2027-06-07T13:00:00+00:00 -> 2027-06-07T10:00:00+00:00",
        ]

        # Marked again with nothing changed (a second router's mark, a save of the same document):
        # recomputed, nothing published.
        await mark(sessions, "policy", "standard", now)
        await scanner.scan_once()
        assert len(await decisions(sessions, key)) == 2
        assert (await ticket(sessions, key)).sla_next_due_at == first_timer
        await solve(rig, key)


async def test_a_new_holiday_moves_the_deadline_past_it(sessions, settings_kwargs):
    friday_16 = utc(2027, 6, 4, 14, 0)  # 16:00 Berlin: 1 h on Friday, 7 h on Monday
    async with sla_rig(sessions, settings_kwargs, config(), friday_16) as rig:
        key = await rig.create(friday_16)
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T14:00:00Z"

        now = utc(2027, 6, 4, 14, 30)
        rig.clock.now = now
        holiday = BusinessCalendar.model_validate({**OFFICE.model_dump(), "holidays": ["2027-06-07"]})
        rig.cfg = SlaConfig(rig.cfg.policies, {"office": holiday}, version=2)
        await mark(sessions, "calendar", "office", now)
        await rig.scanner().scan_once()

        after = await ticket(sessions, key)
        assert after.sla["resolution_due"] == "2027-06-08T14:00:00Z"  # Tuesday 16:00 Berlin
        assert (await decisions(sessions, key))[-1].reasons[-1] == (
            "resolution due 2027-06-07T14:00:00+00:00 -> 2027-06-08T14:00:00+00:00"
        )
        await solve(rig, key)


async def test_a_scanner_behind_the_stored_configuration_leaves_marked_tickets_due(sessions, settings_kwargs):
    """The change commits its mark and its configuration version together. A scanner whose router
    has not loaded that version yet must not recompute the ticket: under the old configuration
    nothing would move, and the mark would be gone."""
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        key = await rig.create(MONDAY_9)
        now = utc(2027, 6, 7, 8, 0)
        rig.clock.now = now
        async with sessions() as session, session.begin():
            # Any stored change raises the configuration version past the rig's (0).
            name = f"recheck-{new_id()[:8]}"
            document = {**OFFICE.model_dump(), "name": name}
            await sla_service.save(session, "calendar", name, document, "t", previous=None)
            await recheck_clocks_on(session, "policy", "standard", now)
        refreshed: list[int] = []

        async def stale_refresh() -> None:
            refreshed.append(1)  # a refresh that failed, or has not happened yet

        stale = EscalationScanner(
            rig.sessions, rig.producer, rig.topic, lambda: rig.cfg, rig.clock, sla_refresh=stale_refresh
        )
        await stale.scan_once()
        assert refreshed
        assert (await ticket(sessions, key)).sla_next_due_at == now
        assert len(await decisions(sessions, key)) == 1

        async def refresh() -> None:
            async with sessions() as session:
                current = await sla_service.config_version(session)
            cfg = shorter(version=current)
            rig.cfg = cfg

        current = EscalationScanner(
            rig.sessions, rig.producer, rig.topic, lambda: rig.cfg, rig.clock, sla_refresh=refresh
        )
        await current.scan_once()
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T11:00:00Z"
        await solve(rig, key)


async def test_an_event_routed_under_the_old_configuration_keeps_the_ticket_due(sessions, settings_kwargs):
    """A router that has not loaded the change yet routes an event of a marked ticket: its
    recomputation, under the old configuration, must not take the mark away."""
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        key = await rig.create(MONDAY_9)
        now = utc(2027, 6, 7, 8, 0)
        rig.clock.now = now
        await mark(sessions, "policy", "standard", now)
        await raise_to_p2(rig, key, now)  # P2 on the old configuration: 4 h, due 11:00 UTC
        row = await ticket(sessions, key)
        assert row.sla["resolution_due"] == "2027-06-07T11:00:00Z" and row.sla_next_due_at == now

        cfg = config(targets=P2_SHORTER)
        rig.cfg = SlaConfig(cfg.policies, cfg.calendars, version=1)
        await rig.scanner().scan_once()
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T09:00:00Z"  # 2 h
        await solve(rig, key)


async def test_saving_or_deleting_a_policy_or_calendar_marks_its_open_tickets(sessions, settings_kwargs):
    """The admin API's writes (PUT and DELETE) all go through ``save``: the mark commits with the
    version, when the change can move a clock (not a creation, nor a rank or applies_when edit).
    The rig's policy and calendar get names of their own, stored nowhere else.

    ``save`` marks at the wall clock's now, and a ticket already due earlier keeps its instant: the
    ticket's first timer must be ahead of the real time, so the rig runs on the next Monday."""
    monday_9 = office_monday_after(utc_now())
    suffix = new_id()[:8]
    policy, calendar = f"recheck-{suffix}", f"recheck-cal-{suffix}"
    on_its_own = BusinessCalendar.model_validate({**OFFICE.model_dump(), "name": calendar})
    cfg = config(name=policy, calendar=calendar)
    cfg = SlaConfig(cfg.policies, {calendar: on_its_own})
    async with sla_rig(sessions, settings_kwargs, cfg, monday_9) as rig:
        key = await rig.create(monday_9)
        first_timer = (await ticket(sessions, key)).sla_next_due_at
        assert first_timer is not None

        async def saved(kind: str, name: str, document: dict[str, Any] | None) -> datetime | None:
            async with sessions() as session, session.begin():
                previous = await sla_service.latest(session, kind, name)
                row = await sla_service.save(session, kind, name, document, "t", previous=previous)
            return row.created_at

        async def reset() -> None:  # as the scanner would leave it
            async with sessions() as session, session.begin():
                row = await session.get(RouterTicket, key)
                assert row is not None
                row.sla_next_due_at = first_timer

        policy_doc = cfg.policies[0].model_dump(mode="json")
        calendar_doc = on_its_own.model_dump(mode="json")
        longer = {**policy_doc, "targets": {"P3": {"first_response": 240, "resolution": 960}}}
        holiday = {**calendar_doc, "holidays": [(monday_9 + timedelta(days=1)).date().isoformat()]}
        for kind, name, document, marks in [
            ("policy", policy, policy_doc, False),  # created: runs no clock yet
            ("calendar", calendar, calendar_doc, False),
            ("policy", policy, {**policy_doc, "rank": 5, "applies_when": None}, False),  # not the clock's
            ("policy", policy, longer, True),
            ("calendar", calendar, holiday, True),
            ("policy", f"other-{suffix}", policy_doc, False),
            ("policy", policy, None, True),  # deleted
            ("calendar", calendar, None, True),
        ]:
            at = await saved(kind, name, document)
            expected = at if marks else first_timer
            assert (await ticket(sessions, key)).sla_next_due_at == expected, (kind, document)
            await reset()
        await solve(rig, key)


async def test_a_configuration_that_never_loads_does_not_stop_the_timers(sessions, settings_kwargs, caplog):
    """Waiting for the newer configuration is bounded (``config_wait_s``): past it, the scanner
    fires under the one it has, and says so."""
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        key = await rig.create(MONDAY_9)
        rig.clock.now = utc(2027, 6, 7, 8, 31)  # past the first-response warning (10:30 Berlin)
        async with sessions() as session, session.begin():
            name = f"recheck-{new_id()[:8]}"
            await sla_service.save(
                session, "calendar", name, {**OFFICE.model_dump(), "name": name}, "t", previous=None
            )

        async def failing_refresh() -> None:
            raise ValueError("a stored calendar no longer validates")  # as LiveSla.refresh would

        options = ScannerOptions(config_wait_s=0)
        scanner = EscalationScanner(
            rig.sessions,
            rig.producer,
            rig.topic,
            lambda: rig.cfg,
            rig.clock,
            options,
            sla_refresh=failing_refresh,
        )
        with caplog.at_level(logging.ERROR):
            assert await scanner.scan_once() >= 1
        assert (await decisions(sessions, key))[-1].kind == EventType.SLA_WARNING.value
        assert "SLA configuration refresh failed" in caplog.text
        assert "SLA timers fire under an older configuration" in caplog.text
        await solve(rig, key)


async def test_a_wait_for_a_newer_configuration_starts_anew_for_each_change(sessions, settings_kwargs):
    """A scanner that waited for one change once must wait for the next one too, not take the
    earlier wait as spent."""
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        key = await rig.create(MONDAY_9)
        now = utc(2027, 6, 7, 8, 0)
        rig.clock.now = now

        async def stale_refresh() -> None:
            return None

        scanner = EscalationScanner(
            rig.sessions, rig.producer, rig.topic, lambda: rig.cfg, rig.clock, sla_refresh=stale_refresh
        )
        async with sessions() as session:
            version = await sla_service.config_version(session)
        scanner._behind = (version, time.monotonic() - 3600)  # behind an hour ago, on an older change
        async with sessions() as session, session.begin():
            name = f"recheck-{new_id()[:8]}"
            await sla_service.save(
                session, "calendar", name, {**OFFICE.model_dump(), "name": name}, "t", previous=None
            )
            await recheck_clocks_on(session, "policy", "standard", now)
        await scanner.scan_once()
        assert scanner.processed == 0
        assert (await ticket(sessions, key)).sla_next_due_at == now
        rig.cfg = shorter(version=version + 1)
        await scanner.scan_once()
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T11:00:00Z"
        await solve(rig, key)


async def test_a_lagging_router_cannot_undo_a_recheck(sessions, settings_kwargs):
    """After the scanner recomputed a ticket under the new configuration, a router that has not
    loaded it yet routes the ticket's next event: its old deadlines are published, but the ticket is
    due again at once, and the next scan puts the new ones back."""
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        key = await rig.create(MONDAY_9)
        now = utc(2027, 6, 7, 8, 0)
        rig.clock.now = now
        cfg = config(targets=P2_SHORTER)
        rig.cfg = SlaConfig(cfg.policies, cfg.calendars, version=1)
        await mark(sessions, "policy", "standard", now)
        await rig.scanner().scan_once()
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T11:00:00Z"  # P3: 4 h

        later = utc(2027, 6, 7, 8, 5)
        rig.clock.now = later
        await raise_to_p2(rig, key, later)  # P2 on the old configuration: 4 h, due 11:00 UTC
        row = await ticket(sessions, key)
        assert row.sla["resolution_due"] == "2027-06-07T11:00:00Z" and row.sla_next_due_at == later
        await rig.scanner().scan_once()
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T09:00:00Z"  # P2: 2 h
        await solve(rig, key)


async def test_a_lagging_router_pausing_a_marked_ticket_leaves_it_due(sessions, settings_kwargs):
    """An edit stops pending from pausing the clock and marks the ticket; a router still on the old
    configuration routes its move to pending, which pauses the clock there. The mark must stay (the
    new configuration runs the clock), or the breach under it never fires."""
    old = config(targets={"P3": {"resolution": 480}})  # version 0: pending pauses
    edited = config(targets={"P3": {"resolution": 480}}, pausing_statuses=["on_hold"])
    async with sla_rig(sessions, settings_kwargs, old, utc(2027, 6, 14, 7, 0)) as rig:
        key = await rig.create(utc(2027, 6, 14, 7, 0))  # Monday 09:00 Berlin: due 17:00
        rig.clock.now = utc(2027, 6, 14, 8, 0)
        await mark(sessions, "policy", "standard", rig.clock.now)
        rig.clock.now = utc(2027, 6, 14, 8, 1)
        ext = key.removeprefix("api:")
        await rig.handler([event(ext, rig.clock.now, TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)])
        assert (await ticket(sessions, key)).sla_next_due_at == utc(2027, 6, 14, 8, 0)  # still due
        rig.cfg = SlaConfig(edited.policies, edited.calendars, version=1)
        rig.clock.now = utc(2027, 6, 14, 8, 2)
        await rig.scanner().scan_once()  # recomputed: pending runs the clock now (the minute it
        # was paused under the old configuration stays paused: due Tuesday 09:01 Berlin)
        assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-15T07:01:00Z"
        rig.clock.now = utc(2027, 6, 15, 7, 2)
        await rig.scanner().scan_once()
        assert "sla.breached" in [d.kind for d in await decisions(sessions, key)]
        await solve(rig, key)


async def test_a_mark_does_not_postpone_a_timer_already_due(sessions, settings_kwargs):
    """The first-response warning and breach fell due while the scanners were behind; an edit then
    marks the ticket due at its own, later instant. A solve that happened between the breach and the
    edit still owes both: the mark must not move the ticket's timer past them."""
    async with sla_rig(sessions, settings_kwargs, config(), utc(2027, 6, 21, 7, 0)) as rig:
        key = await rig.create(utc(2027, 6, 21, 7, 0))  # Monday 09:00 Berlin: first response by 11:00
        rig.clock.now = utc(2027, 6, 21, 9, 30)
        await mark(sessions, "policy", "standard", rig.clock.now)
        assert (await ticket(sessions, key)).sla_next_due_at == utc(2027, 6, 21, 8, 30)  # the warning's
        rig.clock.now = utc(2027, 6, 21, 9, 31)
        ext = key.removeprefix("api:")
        solved_at = utc(2027, 6, 21, 9, 15)  # after both thresholds, before the edit
        await rig.handler([event(ext, solved_at, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
        await rig.scanner().scan_once()
        kinds = [d.kind for d in await decisions(sessions, key)]
        assert kinds.count("sla.warning") == 1 and kinds.count("sla.breached") == 1, kinds


async def test_a_target_shortened_past_the_time_used_is_breached_by_a_solve_before_the_scan(
    sessions, settings_kwargs
):
    """The resolution target goes from 8 h to 2 h with 3 h used; a router that loaded the edit
    routes the solve before any scan. The breach and the warning happened at the edit."""

    def resolution(minutes: int, version: int) -> SlaConfig:
        cfg = config(targets={"P3": {"resolution": minutes}})
        return SlaConfig(cfg.policies, cfg.calendars, version=version)

    async with sla_rig(sessions, settings_kwargs, resolution(480, 0), utc(2027, 6, 28, 7, 0)) as rig:
        key = await rig.create(utc(2027, 6, 28, 7, 0))  # Monday 09:00 Berlin
        noon = utc(2027, 6, 28, 10, 0)
        rig.clock.now = noon
        rig.cfg = resolution(120, 1)
        await mark(sessions, "policy", "standard", noon)
        updated = sla_handler(sessions, rig.producer, rig.topic, rig.clock, rig.cfg)
        rig.clock.now = utc(2027, 6, 28, 10, 0, 30)
        ext = key.removeprefix("api:")
        await updated([event(ext, rig.clock.now, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
        await rig.scanner().scan_once()
        row = await ticket(sessions, key)
        assert row.sla["breached"] is True and row.sla_next_due_at is None
        kinds = [d.kind for d in await decisions(sessions, key)]
        assert kinds.count("sla.warning") == 1 and kinds.count("sla.breached") == 1, kinds


async def test_a_recheck_backlog_is_worked_through_without_sleeping(sessions, settings_kwargs):
    """Rechecks fire nothing; the scanner must still go on while its batches come back full, or a
    backlog of them would hold back real timers by one batch per poll."""
    async with sla_rig(sessions, settings_kwargs, config(), MONDAY_9) as rig:
        keys = [await rig.create(MONDAY_9) for _ in range(5)]
        now = utc(2027, 6, 7, 8, 0)
        rig.clock.now = now
        rig.cfg = shorter(version=1)
        await mark(sessions, "policy", "standard", now)
        scanner = EscalationScanner(
            rig.sessions, rig.producer, rig.topic, lambda: rig.cfg, rig.clock, options=ScannerOptions(batch=2)
        )
        await scanner.scan_all_due()
        for key in keys:
            assert (await ticket(sessions, key)).sla["resolution_due"] == "2027-06-07T11:00:00Z"
            await solve(rig, key)


async def test_a_calendar_edit_counts_the_time_before_it_on_the_old_hours(
    sessions, settings_kwargs, monkeypatch
):
    """A calendar edited in place left the clocks on it counted up to their last event only: the
    scanner then counted the time since (hours before the edit) on the new hours, so a first-response
    breach that had fired moved into the future and the resolution deadline moved by the hours the
    office was open or closed before the edit. Now the edit counts that time on the old hours."""
    suffix = new_id()[:8]
    policy, calendar = f"recheck-{suffix}", f"recheck-cal-{suffix}"
    old = BusinessCalendar.model_validate({**OFFICE.model_dump(), "name": calendar})
    new = BusinessCalendar.model_validate({**old.model_dump(), "weekly_hours": {"mon-fri": ["10:00-18:00"]}})
    cfg = config(name=policy, calendar=calendar)
    monday_9 = utc(2027, 7, 5, 7, 0)  # 09:00 Berlin
    async with sessions() as session, session.begin():
        await sla_service.save(session, "calendar", calendar, old.model_dump(mode="json"), "t", previous=None)
    async with sla_rig(sessions, settings_kwargs, SlaConfig(cfg.policies, {calendar: old}), monday_9) as rig:
        key = await rig.create(monday_9)
        rig.clock.now = utc(2027, 7, 5, 9, 5)  # 11:05 Berlin: the first-response warning and breach
        await rig.scanner().scan_once()
        row = await ticket(sessions, key)
        assert row.sla["breached"] is True and row.sla["first_response_due"] == "2027-07-05T09:00:00Z"

        now = utc(2027, 7, 5, 9, 30)  # 11:30 Berlin: from now on the office opens 10:00-18:00
        rig.clock.now = now
        monkeypatch.setattr(sla_service, "utc_now", lambda: now)
        async with sessions() as session, session.begin():
            previous = await sla_service.latest(session, "calendar", calendar)
            await sla_service.save(
                session, "calendar", calendar, new.model_dump(mode="json"), "t", previous=previous
            )
            version = await sla_service.config_version(session)
        rig.cfg = SlaConfig(cfg.policies, {calendar: new}, version=version)
        await rig.scanner().scan_once()
        row = await ticket(sessions, key)
        # The threshold passed (and fired) at 11:00 keeps its instant; the resolution target has
        # 2.5 h used on the old hours and 5.5 h left on the new ones: 17:00 Berlin, not 18:00.
        assert row.sla["first_response_due"] == "2027-07-05T09:00:00Z"
        assert row.sla["resolution_due"] == "2027-07-05T15:00:00Z"
        await solve(rig, key)


async def test_a_new_warning_share_is_published_by_the_recheck(sessions, settings_kwargs):
    """Only moved due instants were published: a warning share edited from 75 % to 50 % moved the
    warning timers but no event said so, and the metrics' at-risk gauge (the state's
    resolution_warning_at) kept the old instant until the ticket's next event."""

    def share(value: float, version: int) -> SlaConfig:
        cfg = config(warning_share=value)
        return SlaConfig(cfg.policies, cfg.calendars, version=version)

    monday_9 = utc(2027, 7, 12, 7, 0)  # 09:00 Berlin: first response by 11:00, resolution by 17:00
    async with sla_rig(sessions, settings_kwargs, share(0.75, 0), monday_9) as rig:
        key = await rig.create(monday_9)
        now = utc(2027, 7, 12, 7, 30)
        rig.clock.now = now
        rig.cfg = share(0.5, 1)
        await mark(sessions, "policy", "standard", now)
        await rig.scanner().scan_once()
        recheck = (await decisions(sessions, key))[-1]
        assert recheck.kind == EventType.TICKET_STATE_CHANGED.value
        assert recheck.reasons[1:] == [
            "first response warning 2027-07-12T08:30:00+00:00 -> 2027-07-12T08:00:00+00:00",
            "resolution warning 2027-07-12T13:00:00+00:00 -> 2027-07-12T11:00:00+00:00",
        ]
        await solve(rig, key)
