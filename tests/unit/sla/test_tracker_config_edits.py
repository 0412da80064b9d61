"""``SlaTracker`` under an edited configuration, as the escalation scanner's recheck calls it.

A policy left out of the loaded configuration (stored, but no longer valid) keeps its tickets'
clocks; a deleted one does not. An edit of ``pausing_statuses`` alone reaches running clocks.
Office hours Mon-Fri 09-17 UTC; 1 June 2026 is a Monday.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.router.sla import BusinessCalendar, SlaPolicy, due_escalations
from services.router.slas.recheck import moves_clocks
from services.router.slas.service import render_diff
from services.router.slas.tracking import SlaConfig, SlaTracker
from shared.events import Priority, TicketSnapshot, TicketState, TicketStatus

H = timedelta(hours=1)
OFFICE = BusinessCalendar(name="office", timezone="UTC", weekly_hours={"mon-fri": ["09:00-17:00"]})
POLICY = SlaPolicy.model_validate(
    {"name": "standard", "calendar": "office", "targets": {"P3": {"first_response": 120, "resolution": 480}}}
)
FALLBACK = SlaPolicy.model_validate({"name": "fallback", "targets": {"P3": {"resolution": 60}}})
SNAPSHOT = TicketSnapshot(external_id="1", subject="s")


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def config(*policies: SlaPolicy, left_out: frozenset[str] = frozenset()) -> SlaConfig:
    return SlaConfig(policies=policies, calendars={"office": OFFICE}, version=1, left_out=left_out)


class Ticket:
    """One ticket's state and stored clock between decisions, each with a tracker of its own."""

    def __init__(self, cfg: SlaConfig) -> None:
        self.state = TicketState(
            ticket_key="api:1",
            source="api",
            status=TicketStatus.NEW,
            team="access",
            priority=Priority.P3,
            created_at=utc(1, 9),
        )
        self.stored: dict[str, Any] | None = None
        self.tracker = self.step(cfg, utc(1, 9))

    def step(self, cfg: SlaConfig, at: datetime, **changes: Any) -> SlaTracker:
        for name, value in changes.items():
            setattr(self.state, name, value)
        tracker = SlaTracker(cfg, self.stored, SNAPSHOT, at)
        tracker(self.state)
        self.stored, self.tracker = tracker.stored(), tracker
        return tracker


class TestLeftOutPolicy:
    def test_config_default_and_frozen(self) -> None:
        assert SlaConfig().left_out == frozenset()
        cfg = config(POLICY, left_out=frozenset({"old"}))
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.left_out = frozenset()  # type: ignore[misc]
        assert hash(cfg.left_out) == hash(frozenset({"old"}))

    def test_a_clock_on_a_left_out_policy_is_kept_with_its_timers(self) -> None:
        t = Ticket(config(POLICY))
        before = t.tracker.clock
        assert before is not None and t.state.sla.resolution_due == utc(1, 17)
        # The policy no longer validates: not loaded, only named. A catch-all must not take over.
        left_out = config(FALLBACK, left_out=frozenset({"standard"}))
        tracker = t.step(left_out, utc(1, 10, 45))
        assert tracker.clock == before
        assert t.state.sla.policy == "standard" and t.state.sla.resolution_due == utc(1, 17)
        assert tracker.next_due() == utc(1, 10, 30)  # the timers go on: the first-response warning

        # Status changes and the first response still apply, on the clock's own targets.
        tracker = t.step(left_out, utc(1, 12), status=TicketStatus.PENDING)
        assert tracker.clock is not None and tracker.clock.paused
        assert tracker.clock.resolution.consumed == 3 * H
        t.step(left_out, utc(2, 9), status=TicketStatus.OPEN)
        assert t.state.sla.resolution_due == utc(2, 14)  # 5 h left
        t.state.sla = t.state.sla.model_copy(update={"first_responded_at": utc(2, 10)})
        tracker = t.step(left_out, utc(2, 10))
        assert tracker.clock is not None and tracker.clock.first_responded_at == utc(2, 10)
        assert t.state.sla.breached  # 4 h to the first response, against 2 h
        assert tracker.clock.policy == "standard" and tracker.clock.resolution.target == 8 * H

        # Saved again (valid): loaded again, the clock carries on under it.
        tracker = t.step(config(POLICY, FALLBACK), utc(2, 11))
        assert tracker.clock is not None and tracker.clock.policy == "standard"
        assert t.state.sla.resolution_due == utc(2, 14)

    def test_a_deleted_policy_is_reselected_or_dropped_as_before(self) -> None:
        t = Ticket(config(POLICY))
        tracker = t.step(config(FALLBACK), utc(1, 10))
        assert tracker.clock is not None and tracker.clock.policy == "fallback"
        t = Ticket(config(POLICY))
        tracker = t.step(config(left_out=frozenset({"another"})), utc(1, 10))
        assert tracker.clock is None and t.state.sla.resolution_due is None
        # Only the cycle a next clock starts at is kept (see TestRecreatedPolicy).
        assert tracker.stored() == {"next_cycle": 1}


class TestRecreatedPolicy:
    """A policy deleted and created again under the same name: the new clock's timers are its own."""

    def test_the_new_clock_starts_past_the_dropped_clocks_cycles(self) -> None:
        t = Ticket(config(POLICY))
        tracker = t.step(config(POLICY), utc(1, 18))  # past both deadlines (17:00)
        deadlines = tracker.deadlines()
        assert tracker.clock is not None and deadlines is not None
        fired_before = {d.timer_id for d in due_escalations(tracker.clock, deadlines, utc(1, 18), set())}
        assert len(fired_before) == 4
        t.stored = {**(t.stored or {}), "fired": sorted(fired_before)}  # as the scanner records them
        t.step(config(), utc(1, 18, 30))  # deleted; nothing else applies
        tracker = t.step(config(POLICY), utc(2, 9))  # created again; the ticket's next event
        deadlines = tracker.deadlines()
        assert tracker.clock is not None and deadlines is not None and tracker.clock.cycle == 1
        due = due_escalations(tracker.clock, deadlines, utc(2, 9), tracker.fired)
        assert len(due) == 4 and not {d.timer_id for d in due} & fired_before
        # A drop again after a reopen (cycle 2) carries the cycles on from there.
        t.step(config(POLICY), utc(2, 10), status=TicketStatus.SOLVED)
        tracker = t.step(config(POLICY), utc(2, 11), status=TicketStatus.OPEN)
        assert tracker.clock is not None and tracker.clock.cycle == 2
        assert t.step(config(), utc(2, 12)).stored() == {"next_cycle": 3}


class TestPausingStatusesEdit:
    def test_a_pending_ticket_runs_once_pending_no_longer_pauses(self) -> None:
        t = Ticket(config(POLICY))
        t.step(config(POLICY), utc(1, 10), status=TicketStatus.PENDING)
        assert t.state.sla.paused and t.state.sla.resolution_due is None
        assert t.tracker.next_due() is None

        # The recheck after the edit: same targets, share and calendar; pending no longer pauses.
        edited = POLICY.model_copy(update={"pausing_statuses": frozenset({TicketStatus.ON_HOLD})})
        tracker = t.step(config(edited), utc(1, 13))
        assert tracker.clock is not None and tracker.clock.status == TicketStatus.PENDING
        assert not t.state.sla.paused
        assert t.state.sla.resolution_due == utc(2, 12)  # 7 h left from 13:00: 4 Monday, 3 Tuesday
        assert t.state.sla.first_response_due == utc(1, 14)
        assert tracker.next_due() == utc(1, 13, 30)  # the first-response warning (1.5 of 2 h)

        # And back: pausing again stops the clock, keeping the hour it ran.
        tracker = t.step(config(POLICY), utc(1, 14))
        assert tracker.clock is not None and tracker.clock.paused
        assert tracker.clock.resolution.consumed == 2 * H
        assert t.state.sla.resolution_due is None


def test_pausing_statuses_in_another_order_are_no_change() -> None:
    """A frozenset dumps in hash order, and str hashes differ per process: the same policy saved
    by another API process listed its pausing statuses in another order, so its version showed a
    change of them and every open ticket on it was marked for a recheck. Dumped in the statuses'
    own order, and an order stored earlier is no change either."""
    statuses = ["pending", "on_hold", "new"]
    dumps = {
        tuple(SlaPolicy(name="x", pausing_statuses=order).model_dump(mode="json")["pausing_statuses"])
        for order in (statuses, statuses[::-1], statuses[1:] + statuses[:1])
    }
    assert dumps == {("new", "pending", "on_hold")}
    old = {**POLICY.model_dump(mode="json"), "pausing_statuses": ["on_hold", "pending"]}
    new = {**POLICY.model_dump(mode="json"), "pausing_statuses": ["pending", "on_hold"]}
    assert not moves_clocks("policy", old, new)
    assert render_diff(old, new) == "no changes"
    assert moves_clocks("policy", old, {**new, "pausing_statuses": ["pending"]})


class TestAnsweredFirstResponse:
    def test_a_target_edit_after_the_answer_leaves_its_verdict_and_the_clock(self) -> None:
        t = Ticket(config(POLICY))
        answered = t.state.sla.model_copy(update={"first_responded_at": utc(1, 10, 30)})
        t.step(config(POLICY), utc(1, 10, 30), sla=answered)  # 90 min of the 120
        assert t.state.sla.first_response_breached is False
        # The first-response target shortened to 60 min afterwards: the answer was in time.
        targets = POLICY.targets[Priority.P3].model_copy(update={"first_response": timedelta(minutes=60)})
        edited = POLICY.model_copy(update={"targets": {Priority.P3: targets}})
        for at in (utc(1, 11), utc(1, 12)):
            tracker = t.step(config(edited), at)
            assert t.state.sla.first_response_breached is False and not t.state.sla.breached
            # Nothing else changed: the clock is left alone, not retargeted at every event.
            assert tracker.clock is not None and tracker.clock.last_event_at == utc(1, 10, 30)


class TestSolvedTicket:
    def shortened(self) -> SlaPolicy:
        targets = POLICY.targets[Priority.P3].model_copy(update={"resolution": timedelta(hours=4)})
        return POLICY.model_copy(update={"targets": {Priority.P3: targets}})

    def solved_in_time(self) -> Ticket:
        t = Ticket(config(POLICY))
        answered = t.state.sla.model_copy(update={"first_responded_at": utc(1, 10)})
        t.step(config(POLICY), utc(1, 10), sla=answered)
        t.step(config(POLICY), utc(1, 15), status=TicketStatus.SOLVED)  # 6 h of the 8
        assert t.state.sla.resolution_breached is False
        return t

    def test_an_edit_since_the_solve_leaves_its_verdict_at_the_close(self) -> None:
        # The resolution target shortened to 4 h days later; the helpdesk then closes the ticket.
        t = self.solved_in_time()
        tracker = t.step(config(self.shortened()), utc(5, 9), status=TicketStatus.CLOSED)
        assert t.state.sla.resolution_breached is False and not t.state.sla.breached
        assert tracker.clock is not None and tracker.clock.resolution.target == 8 * H

    def test_a_priority_change_on_the_solved_ticket_leaves_its_verdict(self) -> None:
        targets = {"P3": {"first_response": 120, "resolution": 480}, "P1": {"resolution": 240}}
        policy = SlaPolicy.model_validate({"name": "standard", "calendar": "office", "targets": targets})
        t = Ticket(config(policy))
        t.step(config(policy), utc(1, 15), status=TicketStatus.SOLVED)
        assert t.state.sla.resolution_breached is False
        t.step(config(policy), utc(2, 9), priority=Priority.P1)
        assert t.state.sla.resolution_breached is False

    def test_a_reopen_takes_the_new_targets(self) -> None:
        t = self.solved_in_time()
        tracker = t.step(config(self.shortened()), utc(5, 9), status=TicketStatus.OPEN)
        # 6 h used of the 4 now: overdue since the reopen, as the clock counts a changed target.
        assert tracker.clock is not None and tracker.clock.resolution.target == 4 * H
        assert t.state.sla.resolution_due == utc(5, 9) and t.state.sla.resolution_breached is True
