from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.router.sla.calendar import BusinessCalendar
from services.router.sla.clock import SlaClock, TargetClock
from services.router.sla.policy import (
    Notify,
    PriorityTargets,
    RaisePriority,
    SlaPolicy,
    resolve_calendar,
    select_policy,
)
from shared.events import Priority, TicketStatus

NY_TZ = ZoneInfo("America/New_York")
H = timedelta(hours=1)
NY = BusinessCalendar(name="ny", timezone="America/New_York", weekly_hours={"mon-fri": "09:00-17:00"})
POLICY = SlaPolicy(
    name="standard",
    calendar="ny",
    targets={
        Priority.P1: {"first_response": 60, "resolution": 240},
        Priority.P3: {"first_response": "PT4H", "resolution": 960},
    },
)


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    """March 2024 in New York: the 4th is a Monday (EST; DST starts on the 10th)."""
    return datetime(2024, 3, day, hour, minute, tzinfo=NY_TZ).astimezone(UTC)


def started(priority: Priority = Priority.P3, policy: SlaPolicy = POLICY) -> SlaClock:
    return SlaClock.start("zendesk:1", policy, priority, ny(4, 10))


class TestPolicy:
    def test_numbers_are_minutes_and_strings_iso(self) -> None:
        assert POLICY.targets_for(Priority.P1).first_response == H
        assert POLICY.targets_for(Priority.P3).first_response == 4 * H
        assert POLICY.targets_for(Priority.P4) == PriorityTargets()

    def test_round_trip_with_actions(self) -> None:
        actions = {"on_warning": [Notify(target="slack")], "on_breach": [RaisePriority()]}
        policy = POLICY.model_copy(update=actions)
        again = SlaPolicy.model_validate_json(policy.model_dump_json())
        assert again == policy

    @pytest.mark.parametrize(
        "bad",
        [
            {"warning_share": 1.0},
            {"targets": {"P1": {"resolution": 0}}},
            {"pausing_statuses": ["solved"]},
            {"on_breach": [{"action": "explode"}]},
            {"on_breach": [{"action": "reassign_to"}]},
        ],
    )
    def test_invalid_policies(self, bad: dict) -> None:
        with pytest.raises(ValidationError):
            SlaPolicy.model_validate({"name": "x", **bad})

    def test_select_policy_first_match_and_default(self) -> None:
        vip = SlaPolicy(name="vip", applies_when={"field": "tier", "eq": "gold"})
        default = SlaPolicy(name="default")
        assert select_policy([vip, default], lambda cond: cond["eq"] == "gold") is vip
        assert select_policy([vip, default], lambda cond: False) is default
        assert select_policy([vip], lambda cond: False) is None

    def test_resolve_calendar(self) -> None:
        assert resolve_calendar(POLICY, {"ny": NY}) is NY
        assert resolve_calendar(SlaPolicy(name="d"), {}).week_total == timedelta(days=7)
        with pytest.raises(KeyError):
            resolve_calendar(POLICY, {})


class TestDeadlines:
    def test_initial_deadlines(self) -> None:
        d = started().deadlines(NY)
        assert d.first_response_warning_at == ny(4, 13)
        assert d.first_response_due == ny(4, 14)
        assert d.resolution_warning_at == ny(5, 14)  # 12h: 7 on Monday + 5 on Tuesday
        assert d.resolution_due == ny(6, 10)
        assert d.warning_at == ny(4, 13)

    def test_pause_and_resume(self) -> None:
        clock = started().on_status(TicketStatus.PENDING, ny(4, 12), NY)
        assert clock.paused
        d = clock.deadlines(NY)
        assert (d.first_response_due, d.resolution_due, d.warning_at) == (None, None, None)
        assert clock.to_sla_state(NY).paused
        clock = clock.on_status(TicketStatus.OPEN, ny(5, 12), NY)
        assert clock.resolution.consumed == 2 * H
        d = clock.deadlines(NY)
        assert d.first_response_due == ny(5, 14)
        assert d.resolution_due == ny(7, 10)  # 14h left: 5 Tue + 8 Wed + 1 Thu

    def test_on_hold_pauses_by_default_but_pausing_set_is_configurable(self) -> None:
        assert started().on_status(TicketStatus.ON_HOLD, ny(4, 12), NY).paused
        only_pending = POLICY.model_copy(update={"pausing_statuses": frozenset({TicketStatus.PENDING})})
        clock = started(policy=only_pending).on_status(TicketStatus.ON_HOLD, ny(4, 12), NY)
        assert not clock.paused
        assert clock.deadlines(NY).resolution_due == ny(6, 10)

    def test_first_response_stops_its_target_only(self) -> None:
        clock = started().on_first_response(ny(4, 11), NY)
        d = clock.deadlines(NY)
        assert d.first_response_due is None and d.first_response_warning_at is None
        assert d.resolution_due == ny(6, 10)
        assert clock.first_responded_at == ny(4, 11)
        assert not clock.breached
        assert clock.on_first_response(ny(4, 12), NY) is clock  # only the first counts

    def test_late_first_response_is_a_breach(self) -> None:
        clock = started().on_first_response(ny(4, 15), NY)
        assert clock.breached and clock.to_sla_state(NY).breached

    def test_solving_unanswered_past_the_first_response_target_is_a_breach(self) -> None:
        # Within the resolution target, but nobody replied before the first response was due:
        # the breach stands though the scanner may not have fired it before the solve.
        assert started().on_status(TicketStatus.SOLVED, ny(4, 15), NY).breached
        assert not started().on_status(TicketStatus.SOLVED, ny(4, 11), NY).breached  # solved in time
        answered = started().on_first_response(ny(4, 11), NY)
        assert not answered.on_status(TicketStatus.SOLVED, ny(4, 15), NY).breached

    def test_resolve_then_reopen_continues_resolution_time(self) -> None:
        clock = started().on_first_response(ny(4, 11), NY).on_status(TicketStatus.SOLVED, ny(5, 10), NY)
        assert clock.resolved_at == ny(5, 10)
        assert clock.deadlines(NY).resolution_due is None
        assert clock.resolution.consumed == 8 * H
        reopened = clock.on_reopen(ny(6, 9), NY)
        assert reopened.cycle == 1 and reopened.resolved_at is None
        assert reopened.deadlines(NY).resolution_due == ny(6, 17)  # 8h left from Wednesday 09:00
        # A non-resolved status after resolution is a reopen as well.
        assert clock.on_status(TicketStatus.OPEN, ny(6, 9), NY) == reopened
        # Solved -> closed is not a reopen and does not move resolved_at.
        closed = clock.on_status(TicketStatus.CLOSED, ny(6, 9), NY)
        assert closed.resolved_at == ny(5, 10) and closed.cycle == 0

    def test_reopen_of_open_ticket_is_not_a_new_cycle(self) -> None:
        assert started().on_reopen(ny(4, 11), NY).cycle == 0

    def test_priority_change_recomputes_deadlines_keeping_consumed_time(self) -> None:
        clock = started(Priority.P3).on_priority_change(Priority.P1, POLICY, ny(4, 12), NY)
        d = clock.deadlines(NY)
        assert clock.priority == Priority.P1
        assert d.resolution_due == ny(4, 14)  # 4h target, 2h consumed
        assert d.resolution_warning_at == ny(4, 13)
        assert d.first_response_due == ny(4, 12)  # 1h target already exceeded: overdue since the change
        lowered = clock.on_priority_change(Priority.P3, POLICY, ny(4, 12), NY)
        assert lowered.deadlines(NY) == started(Priority.P3).deadlines(NY)

    def test_priority_without_target_has_no_deadlines(self) -> None:
        d = started(Priority.P4).deadlines(NY)
        assert (d.first_response_due, d.resolution_due, d.warning_at) == (None, None, None)

    def test_past_deadline_stays_exact_after_later_events(self) -> None:
        clock = started(Priority.P1).on_status(TicketStatus.PENDING, ny(4, 16), NY)
        assert clock.resolution.consumed == 6 * H
        clock = clock.on_status(TicketStatus.OPEN, ny(5, 10), NY)
        d = clock.deadlines(NY)
        assert d.resolution_due == ny(4, 14)
        assert d.resolution_warning_at == ny(4, 13)
        assert d.first_response_due == ny(4, 11)

    def test_deadlines_across_dst_change(self) -> None:
        clock = SlaClock.start("zendesk:2", POLICY, Priority.P3, ny(8, 16))  # Friday before DST
        assert clock.deadlines(NY).resolution_due == ny(12, 16)  # 1 + 8 + 7 hours, EDT on Tuesday
        assert ny(12, 16) == datetime(2024, 3, 12, 20, tzinfo=UTC)

    def test_out_of_order_event_does_not_run_time_backwards(self) -> None:
        clock = started().on_status(TicketStatus.OPEN, ny(4, 12), NY)
        late = clock.on_status(TicketStatus.PENDING, ny(4, 11), NY)
        assert late.last_event_at == ny(4, 12)
        assert late.resolution.consumed == 2 * H

    def test_wrong_calendar_rejected(self) -> None:
        with pytest.raises(ValueError, match="calendar"):
            started().deadlines(BusinessCalendar.always_open())

    def test_json_round_trip(self) -> None:
        clock = started().on_status(TicketStatus.PENDING, ny(4, 12), NY).on_first_response(ny(4, 13), NY)
        again = SlaClock.model_validate_json(clock.model_dump_json())
        assert again == clock
        assert again.deadlines(NY) == clock.deadlines(NY)

    def test_24x7_policy(self) -> None:
        policy = SlaPolicy(name="always", targets={Priority.P2: {"resolution": 90}})
        calendar = resolve_calendar(policy, {})
        clock = SlaClock.start("k:1", policy, Priority.P2, datetime(2024, 3, 9, 23, tzinfo=UTC))
        assert clock.deadlines(calendar).resolution_due == datetime(2024, 3, 10, 0, 30, tzinfo=UTC)


def policy_with(resolution: int, share: float = 0.75) -> SlaPolicy:
    """POLICY with another P1 resolution target (minutes) and warning share."""
    targets = {Priority.P1: {"first_response": 60, "resolution": resolution}}
    return SlaPolicy(name="standard", calendar="ny", targets=targets, warning_share=share)


class TestRetarget:
    """A recheck (same priority, edited policy) of a ticket past its thresholds: the instants the
    thresholds were really reached stay; only a threshold the change itself exceeds is "now"."""

    def test_overdue_ticket_keeps_its_breach_instant_when_the_target_shrinks(self) -> None:
        # P1 from Monday 10:00: warning 13:00 (3 h), due 14:00 (4 h); rechecked at 16:00, 6 h used.
        clock = started(Priority.P1).on_priority_change(Priority.P1, policy_with(180), ny(4, 16), NY)
        d = clock.deadlines(NY)
        assert d.resolution_due == ny(4, 14)  # not 16:00: the breach happened at 14:00
        assert d.resolution_warning_at == ny(4, 13)
        assert clock.to_sla_state(NY).resolution_due == ny(4, 14)
        # Rechecked again later under the same policy: nothing moves.
        again = clock.on_priority_change(Priority.P1, policy_with(180), ny(5, 10), NY)
        assert again.deadlines(NY).resolution_due == ny(4, 14)

    def test_a_longer_target_still_exceeded_keeps_the_instant(self) -> None:
        clock = started(Priority.P1).on_priority_change(Priority.P1, policy_with(300), ny(4, 16), NY)
        d = clock.deadlines(NY)
        assert (d.resolution_warning_at, d.resolution_due) == (ny(4, 13), ny(4, 14))

    def test_only_a_newly_exceeded_threshold_is_overdue_since_the_change(self) -> None:
        # 13:30: 3.5 h used, the warning (3 h) reached at 13:00, the 4 h deadline not yet.
        clock = started(Priority.P1).on_priority_change(Priority.P1, policy_with(200), ny(4, 13, 30), NY)
        d = clock.deadlines(NY)
        assert d.resolution_due == ny(4, 13, 30)  # 3 h 20 min exceeded by the change: from it on
        assert d.resolution_warning_at == ny(4, 13)  # 2.5 h, already reached at 13:00: kept

    def test_newly_exceeded_thresholds_of_a_shrunk_target_are_the_change(self) -> None:
        # P3 (16 h) at Monday 16:00: 6 h used, nothing reached; 5 h now: overdue since the change.
        shrunk = SlaPolicy.model_validate(
            {**POLICY.model_dump(), "targets": {"P3": {"first_response": "PT4H", "resolution": 300}}}
        )
        d = started(Priority.P3).on_priority_change(Priority.P3, shrunk, ny(4, 16), NY).deadlines(NY)
        assert (d.resolution_warning_at, d.resolution_due) == (ny(4, 16), ny(4, 16))

    def test_a_share_change_keeps_the_unchanged_deadline(self) -> None:
        clock = started(Priority.P1).on_priority_change(Priority.P1, policy_with(240, 0.5), ny(4, 16), NY)
        d = clock.deadlines(NY)
        assert d.resolution_due == ny(4, 14)  # the 4 h threshold did not change
        assert d.resolution_warning_at == ny(4, 13)  # 2 h now, but reached (3 h) at 13:00 already
        # A warning the new share puts behind the ticket: from the change on; the deadline stays.
        p3 = SlaPolicy.model_validate({**POLICY.model_dump(), "warning_share": 0.25})
        d = started(Priority.P3).on_priority_change(Priority.P3, p3, ny(4, 16), NY).deadlines(NY)
        assert d.resolution_warning_at == ny(4, 16)  # 4 h of 16, 6 h used
        assert d.resolution_due == ny(6, 10)

    def test_target_clock_keeps_the_instant_of_an_unchanged_threshold(self) -> None:
        reached = TargetClock(
            target=4 * H, consumed=5 * H, warning_reached_at=ny(4, 13), due_reached_at=ny(4, 14)
        )
        same_due = reached.retarget(4 * H, 0.5, 0.75, ny(4, 16))
        assert (same_due.warning_reached_at, same_due.due_reached_at) == (ny(4, 13), ny(4, 14))
        # 4 h x 0.75 == 6 h x 0.5: the warning threshold is the same 3 h; the 6 h one is ahead.
        same_warning = reached.retarget(6 * H, 0.5, 0.75, ny(4, 16))
        assert (same_warning.warning_reached_at, same_warning.due_reached_at) == (ny(4, 13), None)


class TestSlaState:
    def test_flags_follow_fired_escalations_and_cycles(self) -> None:
        clock = started().on_escalation_fired("warning")
        state = clock.to_sla_state(NY)
        assert state.warning_sent and not state.breached
        assert state.policy == "standard" and state.resolution_due == ny(6, 10)
        clock = clock.on_escalation_fired("breach").on_status(TicketStatus.SOLVED, ny(6, 12), NY)
        reopened = clock.on_reopen(ny(7, 9), NY).to_sla_state(NY)
        assert not reopened.warning_sent  # per cycle
        assert reopened.breached  # sticky
