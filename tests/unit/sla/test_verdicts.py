"""The router's verdict on each SLA target (``state.sla.*_breached``), which the metrics' breach
counter counts: breached once the time used passed the target at an event's own instant, or once
its breach fired; sticky for the ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.router.sla import BusinessCalendar, SlaClock, SlaPolicy
from services.router.sla.escalation import timer_id
from shared.events import Priority, TicketStatus

ALWAYS = BusinessCalendar.always_open()
T0 = datetime(2026, 6, 1, tzinfo=UTC)
H, MS = timedelta(hours=1), timedelta(milliseconds=1)
POLICY = SlaPolicy.model_validate(
    {
        "name": "p",
        "calendar": ALWAYS.name,
        "targets": {"P2": {"first_response": 60, "resolution": 240}, "P4": {"resolution": 2400}},
    }
)
KEY = "api:1"


def started() -> SlaClock:
    return SlaClock.start(KEY, POLICY, Priority.P2, T0, TicketStatus.OPEN)


def verdicts(clock: SlaClock, fired: set[str] = frozenset()) -> tuple[bool | None, bool | None]:  # type: ignore[assignment]
    sla = clock.to_sla_state(ALWAYS, fired=fired)
    return sla.first_response_breached, sla.resolution_breached


def test_a_reply_and_a_solve_are_judged_by_their_own_instant() -> None:
    clock = started()
    assert verdicts(clock) == (False, False)
    clock = clock.on_first_response(T0 + H, ALWAYS)  # at the very instant: met
    clock = clock.on_status(TicketStatus.SOLVED, T0 + 4 * H - MS, ALWAYS)
    assert verdicts(clock) == (False, False)


def test_a_reply_or_solve_past_the_target_is_breached() -> None:
    clock = started().on_first_response(T0 + H + MS, ALWAYS)
    assert verdicts(clock) == (True, False)
    clock = clock.on_status(TicketStatus.SOLVED, T0 + 4 * H + MS, ALWAYS)
    assert verdicts(clock) == (True, True)


def test_solved_unanswered_past_the_first_response_target_breaches_it() -> None:
    clock = started().on_status(TicketStatus.SOLVED, T0 + 2 * H, ALWAYS)
    assert verdicts(clock) == (True, False)


def test_a_fired_breach_stands_against_a_solve_in_time_routed_after_it() -> None:
    clock = started().on_first_response(T0 + 0.5 * H, ALWAYS)
    fired = {timer_id(KEY, "resolution", "breach", 0), timer_id(KEY, "first_response", "warning", 0)}
    clock = clock.on_escalation_fired("breach")
    clock = clock.on_status(TicketStatus.SOLVED, T0 + 3 * H, ALWAYS)  # delivered after the scan
    assert verdicts(clock, fired) == (False, True)


def test_a_breach_stays_when_the_target_moves_later_or_a_new_cycle_starts() -> None:
    clock = started().on_status(TicketStatus.SOLVED, T0 + 5 * H, ALWAYS)
    assert verdicts(clock) == (True, True)
    clock = clock.on_status(TicketStatus.OPEN, T0 + 6 * H, ALWAYS)  # reopened: a new cycle
    assert verdicts(clock) == (True, True)
    # Lowered to P4 (40 h, no first-response target) with 5 h used: its own clock no longer says
    # late, the breach fired (owed by the router, the change being past the deadline) stands.
    lowered = started().on_priority_change(Priority.P4, POLICY, T0 + 5 * H, ALWAYS)
    assert verdicts(lowered) == (False, False)
    assert verdicts(lowered, {timer_id(KEY, "resolution", "breach", 0)}) == (False, True)


OFFICE = BusinessCalendar(name="office", timezone="UTC", weekly_hours={"mon-fri": "09:00-17:00"})
OFFICE_POLICY = SlaPolicy.model_validate(
    {"name": "o", "calendar": OFFICE.name, "targets": {"P2": {"first_response": 480, "resolution": 480}}}
)
MONDAY_9 = datetime(2026, 6, 1, 9, tzinfo=UTC)  # a Monday: both targets run out at 17:00


def test_a_deadline_at_closing_time_is_missed_by_a_solve_after_it() -> None:
    # The time used stops at 17:00 when the office closes, so a reply or solve at 17:00:20 (or
    # overnight) has used exactly the target, not more: it was judged met, while the scanner fires
    # the breach on the wall clock past 17:00, and the router owes that breach when it routes the
    # event late. Met or breached hung on which came first; missed it is, as the deadline passed.
    late = MONDAY_9 + 8 * H + timedelta(seconds=20)
    clock = SlaClock.start(KEY, OFFICE_POLICY, Priority.P2, MONDAY_9, TicketStatus.OPEN)
    answered = clock.on_first_response(late, OFFICE)
    assert answered.breached and answered.to_sla_state(OFFICE).first_response_breached is True
    solved = clock.on_status(TicketStatus.SOLVED, late + 14 * H, OFFICE)  # Tuesday 07:00
    sla = solved.to_sla_state(OFFICE)
    assert solved.breached and (sla.first_response_breached, sla.resolution_breached) == (True, True)


def test_a_solve_at_the_closing_deadline_itself_is_met_and_stays_met() -> None:
    clock = SlaClock.start(KEY, OFFICE_POLICY, Priority.P2, MONDAY_9, TicketStatus.OPEN)
    clock = clock.on_first_response(MONDAY_9 + 8 * H, OFFICE)
    clock = clock.on_status(TicketStatus.SOLVED, MONDAY_9 + 8 * H, OFFICE)
    assert not clock.breached and verdicts_on(clock) == (False, False)
    # A comment on the solved ticket the next morning moves the clock's last event, not the
    # instants its targets were judged at.
    commented = clock.on_status(TicketStatus.SOLVED, MONDAY_9 + 24 * H, OFFICE)
    assert not commented.breached and verdicts_on(commented) == (False, False)


def verdicts_on(clock: SlaClock) -> tuple[bool | None, bool | None]:
    sla = clock.to_sla_state(OFFICE)
    return sla.first_response_breached, sla.resolution_breached


def test_an_answer_in_time_stays_met_when_the_priority_is_raised_after_it() -> None:
    # Answered after 90 min against P4's 120; raised to P2 (60) afterwards. The answer was in
    # time: judged against the raised target it turned breached, though nothing had breached.
    policy = SlaPolicy.model_validate(
        {
            "name": "p",
            "targets": {"P2": {"first_response": 60, "resolution": 240}, "P4": {"first_response": 120}},
        }
    )
    clock = SlaClock.start(KEY, policy, Priority.P4, T0, TicketStatus.OPEN)
    clock = clock.on_first_response(T0 + 1.5 * H, ALWAYS)
    raised = clock.on_priority_change(Priority.P2, policy, T0 + 2 * H, ALWAYS)
    assert not raised.breached and verdicts(raised) == (False, False)
    assert raised.first_response == clock.first_response
    assert raised.deadlines(ALWAYS).resolution_due == T0 + 4 * H  # the running target does move
    # Answered late stays late when lowered afterwards too.
    late = SlaClock.start(KEY, policy, Priority.P2, T0, TicketStatus.OPEN).on_first_response(
        T0 + 1.5 * H, ALWAYS
    )
    lowered = late.on_priority_change(Priority.P4, policy, T0 + 2 * H, ALWAYS)
    assert lowered.breached and verdicts(lowered) == (True, False)
