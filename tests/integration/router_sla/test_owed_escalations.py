"""A warning or breach that fell due while the scanner was behind (a router down, a backlog) is
still fired when the ticket's next event, applied first, stops or pauses its clock: the event
happened after the deadline, so the escalation happened before it."""

from __future__ import annotations

from sqlalchemy import select

from services.router.models import RouterTicket, RoutingDecision
from services.router.slas.tracking import SlaConfig
from shared.events import Comment, EventType, TicketStatus
from tests.integration.router_sla.helpers import config, event, new_id, sla_rig, utc

START = utc(2026, 6, 8, 7, 0)  # Monday 09:00 in Berlin: first response due 11:00 (09:00 UTC)


async def decisions(rig, key: str) -> list[tuple[str, list[str]]]:
    async with rig.sessions() as session:
        query = select(RoutingDecision.kind, RoutingDecision.reasons).where(RoutingDecision.ticket_key == key)
        return [
            (kind, reasons)
            for kind, reasons in (await session.execute(query.order_by(RoutingDecision.id))).all()
        ]


async def test_a_breach_due_before_the_solve_applied_first_is_still_fired(sessions, settings_kwargs):
    cfg = config(on_breach=[{"action": "raise_priority"}])
    async with sla_rig(sessions, settings_kwargs, cfg, START) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, START)])
        # The router was down from 10:00 to 12:30 Berlin; queued: solved at 12:00, no reply sent.
        rig.clock.now = utc(2026, 6, 8, 10, 30)
        await rig.handler(
            [event(external_id, utc(2026, 6, 8, 10, 0), TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)]
        )
        assert await rig.scanner().scan_once() == 2  # the warning and the breach it owed
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds == ["ticket.routed", "ticket.resolved", "sla.warning", "sla.breached"]
        breach_reasons = (await decisions(rig, key))[-1][1]
        assert breach_reasons == [
            "SLA first response breached: due 2026-06-08T09:00:00+00:00 (policy standard)"
        ]
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.sla["breached"] and row.priority == "P3"  # solved: not raised
            assert row.sla_next_due_at is None and "owed" not in (row.sla_clock or {})
        # Reopened later: what was owed is not fired a second time.
        await rig.handler(
            [event(external_id, utc(2026, 6, 8, 11, 0), TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)]
        )
        rig.clock.now = utc(2026, 6, 8, 11, 1)
        await rig.scanner().scan_once()
        # The reopened cycle fires the passed thresholds once, as any reopen does; the owed ones
        # are not fired again on top.
        assert [kind for kind, _ in await decisions(rig, key)][4:] == [
            "ticket.reopened",
            "sla.warning",
            "sla.breached",
            "ticket.escalated",
        ]


async def test_a_breach_due_before_a_pause_fires_with_its_actions(sessions, settings_kwargs):
    cfg = config(on_breach=[{"action": "raise_priority"}])
    async with sla_rig(sessions, settings_kwargs, cfg, START) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, START)])
        rig.clock.now = utc(2026, 6, 8, 10, 30)
        await rig.handler(
            [
                event(
                    external_id, utc(2026, 6, 8, 10, 0), TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED
                )
            ]
        )
        assert await rig.scanner().scan_once() == 2
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds == [
            "ticket.routed",
            "ticket.state_changed",
            "sla.warning",
            "sla.breached",
            "ticket.escalated",
        ]
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.priority == "P2" and row.status == "pending"


async def test_a_late_first_reply_after_an_event_that_changed_nothing_still_owes_its_breach(
    sessions, settings_kwargs
):
    """The scanner is behind. An update of 11:15 that changes nothing is routed (it emits nothing, so
    what it owed is not kept); then the agent's reply of 11:10 comes in late, older than that
    update. The first response's warning (10:30) and breach (11:00) fell due before the reply."""
    start = utc(2026, 6, 15, 7, 0)  # Monday 09:00 Berlin
    async with sla_rig(sessions, settings_kwargs, config(), start) as rig:
        key = await rig.create(start)
        external_id = key.removeprefix("api:")
        rig.clock.now = utc(2026, 6, 15, 9, 30)
        await rig.handler(
            [event(external_id, utc(2026, 6, 15, 9, 15), TicketStatus.OPEN, EventType.TICKET_UPDATED)]
        )
        reply = Comment(body="hello", from_agent=True, public=True)
        late = event(
            external_id, utc(2026, 6, 15, 9, 10), TicketStatus.OPEN, EventType.TICKET_COMMENTED, comment=reply
        )
        await rig.handler([late])
        await rig.scanner().scan_once()
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None
        assert row.sla["first_responded_at"] is not None and row.sla["breached"] is True
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds.count("sla.warning") == 1 and kinds.count("sla.breached") == 1, kinds


async def test_a_priority_raised_past_its_target_by_the_event_that_solves_the_ticket_is_a_breach(
    sessions, settings_kwargs
):
    """One update raises the priority (its target already used up) and solves the ticket: the new
    deadline lies before the solve, so the breach happened; no scan can see it after the solve."""
    cfg = config(targets={"P3": {"resolution": 480}, "P2": {"resolution": 120}})
    start = utc(2026, 6, 22, 7, 0)  # Monday 09:00 Berlin
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        key = await rig.create(start)
        external_id = key.removeprefix("api:")
        rig.clock.now = utc(2026, 6, 22, 10, 0)  # 3 h used; P2 allows 2 h
        solve = event(
            external_id, rig.clock.now, TicketStatus.SOLVED, EventType.TICKET_UPDATED, priority="P2"
        )
        await rig.handler([solve])
        await rig.scanner().scan_once()
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None
        assert row.sla["breached"] is True
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds.count("sla.breached") == 1, kinds


async def test_a_ticket_solved_at_the_instant_its_target_runs_out_is_not_breached(sessions, settings_kwargs):
    """Solved unanswered at the very instant its first response was due: on time, as the clock
    (breached only past the target) and the metrics (a breach is a solve after the deadline) say.
    The scanner was behind, so the solve owed what fell due by its instant, the breach included:
    an sla.breached (and its notifications) for a ticket solved in time, its state then breached."""
    cfg = config(on_breach=[{"action": "raise_priority"}])
    async with sla_rig(sessions, settings_kwargs, cfg, START) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, START)])
        rig.clock.now = utc(2026, 6, 8, 9, 30)
        due = utc(2026, 6, 8, 9, 0)  # 11:00 Berlin: the first response's deadline
        await rig.handler([event(external_id, due, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.sla["breached"] is False
        assert await rig.scanner().scan_once() == 1  # the warning (10:30 Berlin) only
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds == ["ticket.routed", "ticket.resolved", "sla.warning"]
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.sla["breached"] is False and row.sla_next_due_at is None


async def test_an_owed_warning_of_a_ticket_whose_policy_was_deleted_does_not_stop_the_scanner(
    sessions, settings_kwargs
):
    """The warning fell due, the ticket was paused before the scanner fired it (owed), then its
    policy was deleted and no other applies: the recomputation drops the clock, and the owed warning
    hit ``assert tracker.clock is not None``. The scan failed, and every scan after it on that ticket,
    the first due: no timer of any ticket fired again. The warning, a fact from before the deletion,
    fires (naming the policy it fell due under); the ticket then has no SLA and no timer."""
    start = utc(2026, 3, 2, 8, 0)  # Monday 09:00 Berlin (a date no other test's scan reaches first)
    async with sla_rig(sessions, settings_kwargs, config(), start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])
        pending = event(
            external_id, utc(2026, 3, 2, 9, 40), TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED
        )
        await rig.handler([pending])  # after the first response's warning (10:30 Berlin)
        rig.cfg = SlaConfig(calendars=rig.cfg.calendars, version=rig.cfg.version + 1)  # the policy deleted
        rig.clock.now = utc(2026, 3, 2, 9, 45)
        await rig.scanner().scan_once()
        kinds = await decisions(rig, key)
        assert [kind for kind, _ in kinds] == [
            "ticket.routed",
            "ticket.state_changed",
            "ticket.state_changed",
            "sla.warning",
        ]
        assert kinds[-1][1] == [
            "SLA first response at risk: warning at 2026-03-02T09:30:00+00:00, "
            "due 2026-03-02T10:00:00+00:00 (policy standard)"
        ]
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and (row.sla_clock or {}).get("clock") is None
            assert row.sla_next_due_at is None


async def test_a_breach_owed_by_a_solved_ticket_still_tags_it(sessions, settings_kwargs):
    """A breach tag marks the tickets that breached (for the helpdesk's own reports). Owed by a
    ticket solved since (the scanner behind), the breach dropped it with the priority and team
    changes: the same late ticket was tagged or not depending on the scanner's lag. The tag is
    added; the priority and team still are not changed for a solved ticket."""
    cfg = config(on_breach=[{"action": "raise_priority"}, {"action": "add_tag", "tag": "sla-breached"}])
    start = utc(2026, 3, 9, 8, 0)  # Monday 09:00 Berlin: first response due 11:00 (10:00 UTC)
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])
        rig.clock.now = utc(2026, 3, 9, 11, 30)
        solved = event(
            external_id, utc(2026, 3, 9, 11, 0), TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED
        )
        await rig.handler([solved])
        await rig.scanner().scan_once()
        kinds = await decisions(rig, key)
        assert [kind for kind, _ in kinds] == [
            "ticket.routed",
            "ticket.resolved",
            "sla.warning",
            "sla.breached",
            "ticket.escalated",
        ]
        assert kinds[-1][1] == ["escalation on SLA breach", "tagged sla-breached"]
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None
        assert "sla-breached" in row.snapshot["tags"]
        assert (row.priority, row.status, row.sla_next_due_at) == ("P3", "solved", None)


async def test_a_ticket_solved_at_its_deadline_is_met_when_the_scanner_ran_at_that_instant(
    sessions, settings_kwargs
):
    """The scanner fired a breach at its due instant itself (due <= now). A ticket solved at that
    very instant, its solve routed after that scan, was then left breached (the flag is sticky) with
    sla.breached published, though the clock (late only past the target), the owed rule above and
    the metrics (a resolution at the due instant is on time) all count it met. A breach fires once
    its instant has passed."""
    cfg = config(targets={"P3": {"resolution": 480}})
    start = utc(2026, 2, 9, 8, 0)  # Monday 09:00 Berlin (CET): resolution due 17:00 Berlin
    due = utc(2026, 2, 9, 16, 0)
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        external_id = new_id()
        key = f"api:{external_id}"
        await rig.handler([event(external_id, start)])
        rig.clock.now = due
        await rig.scanner().scan_once()
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds == ["ticket.routed", "sla.warning"]  # the breach is not due until past 17:00

        rig.clock.now = utc(2026, 2, 9, 16, 5)
        await rig.handler([event(external_id, due, TicketStatus.SOLVED, EventType.TICKET_STATUS_CHANGED)])
        await rig.scanner().scan_once()
        kinds = [kind for kind, _ in await decisions(rig, key)]
        assert kinds == ["ticket.routed", "sla.warning", "ticket.resolved"]
        async with rig.sessions() as session:
            row = await session.get(RouterTicket, key)
            assert row is not None and row.sla["breached"] is False and row.sla_next_due_at is None
