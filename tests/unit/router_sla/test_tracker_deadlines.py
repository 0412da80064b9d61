"""A decision works out a clock's deadlines once: the state's due instants and the ticket's next
timer come from the same calendar walk, and a changed clock (a new object) gets its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.router.sla import BusinessCalendar, SlaClock, SlaPolicy
from services.router.sla.clock import Deadlines
from services.router.slas.tracking import SlaConfig, SlaTracker
from shared.events import Priority, TicketSnapshot, TicketState, TicketStatus

OFFICE = BusinessCalendar(name="office", timezone="Europe/Berlin", weekly_hours={"mon-fri": ["09:00-17:00"]})
POLICY = SlaPolicy.model_validate(
    {"name": "standard", "calendar": "office", "targets": {"P3": {"first_response": 120, "resolution": 480}}}
)
AT = datetime(2026, 6, 5, 14, tzinfo=UTC)


def state(status: TicketStatus = TicketStatus.NEW) -> TicketState:
    return TicketState(
        ticket_key="api:1", source="api", status=status, team="access", priority=Priority.P3, created_at=AT
    )


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[SlaClock]:
    seen: list[SlaClock] = []
    original = SlaClock.deadlines

    def counting(self: SlaClock, calendar: BusinessCalendar) -> Deadlines:
        seen.append(self)
        return original(self, calendar)

    monkeypatch.setattr(SlaClock, "deadlines", counting)
    return seen


def test_state_and_next_timer_share_one_walk_per_clock(walks: list[SlaClock]) -> None:
    config = SlaConfig(policies=[POLICY], calendars={"office": OFFICE})
    snapshot = TicketSnapshot(external_id="1", subject="s")
    tracker = SlaTracker(config, None, snapshot, AT)
    ticket = state()
    tracker(ticket)
    due = tracker.next_due()
    assert len(walks) == 1
    assert ticket.sla.first_response_warning_at == due  # the first timer is the first warning

    paused = state(TicketStatus.PENDING)
    tracker(paused)  # a new clock: its own deadlines, not the old ones
    assert len(walks) == 2 and walks[1] is tracker.clock
    assert paused.sla.resolution_due is None and tracker.next_due() is None
    assert len(walks) == 2


def test_a_clock_nothing_has_moved_yet_restarts_at_an_earlier_creation() -> None:
    """The ticket was first heard of after its creation (a reply before the created event): its
    clock started then. The creation the helpdesk states later is when its targets began."""
    config = SlaConfig(policies=[POLICY], calendars={"office": OFFICE})
    snapshot = TicketSnapshot(external_id="1", subject="s")
    first = SlaTracker(config, None, snapshot, AT)
    first(state())
    stored = first.stored()
    earlier = AT - timedelta(hours=1)  # 15:00 in Berlin: an hour of the first-response target used
    corrected = state()
    corrected.created_at = earlier
    tracker = SlaTracker(config, stored, snapshot, AT)
    tracker(corrected)
    assert tracker.clock is not None and tracker.clock.started_at == earlier
    assert corrected.sla.first_response_due == earlier + timedelta(hours=2)
    # A clock an event has moved since its start (time used, a pause) keeps its start: what it
    # measured stands, and the scanner may have fired on it.
    paused = SlaTracker(config, stored, snapshot, AT + timedelta(minutes=10))
    paused(state(TicketStatus.PENDING))
    moved = paused.stored()
    later = SlaTracker(config, moved, snapshot, AT + timedelta(minutes=20))
    kept = state(TicketStatus.PENDING)
    kept.created_at = earlier
    later(kept)
    assert later.clock is not None and later.clock.started_at == AT
