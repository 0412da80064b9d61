"""Every routing event's ``state.sla`` carries the warning instants the escalation scanner fires at.

The ticket goes through the lifecycle (:func:`decide`) with the router's SLA tracker, as the batch
handler drives it, on a business-hours calendar: creation, pause, resume, priority change, a
policy change, solve and reopen. After every decision the emitted instants are compared with what
:func:`due_escalations` (the scanner's function) returns for the stored clock, and a few with
instants worked out by hand, which a wall-clock share of created -> due would not give.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.router.routing.lifecycle import RouteResult, decide
from services.router.sla import BusinessCalendar, SlaClock, SlaPolicy, due_escalations
from services.router.sla.clock import TargetName
from services.router.slas.tracking import SlaConfig, SlaTracker
from shared.events import (
    Comment,
    EventType,
    Priority,
    SlaState,
    TicketSnapshot,
    TicketState,
    TicketStatus,
    ticket_event,
)

OFFICE = BusinessCalendar(name="office", timezone="Europe/Berlin", weekly_hours={"mon-fri": ["09:00-17:00"]})
TARGETS = {"P3": {"first_response": 120, "resolution": 480}, "P2": {"first_response": 60, "resolution": 240}}
POLICY = SlaPolicy.model_validate({"name": "standard", "calendar": "office", "targets": TARGETS})
LATER = datetime(2100, 1, 1, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)  # 5 June 2026 is a Friday


def config(policy: SlaPolicy = POLICY) -> SlaConfig:
    return SlaConfig(policies=[policy], calendars={"office": OFFICE})


def route(snapshot: TicketSnapshot, source: str) -> RouteResult:
    return RouteResult(team="access", reasons=["test"])


def scanner_warning(clock: SlaClock, target: TargetName) -> datetime | None:
    """When the scanner fires this target's warning for ``clock`` (None: it never will as is)."""
    due = due_escalations(clock, clock.deadlines(OFFICE), LATER, set())
    found = [d.due_at for d in due if d.kind == "warning" and d.target == target]
    return found[0] if found else None


class Ticket:
    """One ticket as the batch handler keeps it between events: state, snapshot, stored clock."""

    def __init__(self) -> None:
        self.state: TicketState | None = None
        self.stored: dict[str, Any] | None = None
        self.doc: dict[str, Any] = {}
        self.emitted: list[SlaState] = []
        self.clock: SlaClock | None = None

    def event(self, at: datetime, cfg: SlaConfig = config(), **fields: Any) -> SlaState:
        kind = EventType.TICKET_CREATED if self.state is None else EventType.TICKET_UPDATED
        self.doc = {**self.doc, "external_id": "1", "subject": "s", "updated_at": at, **fields}
        snapshot = TicketSnapshot.model_validate(self.doc)
        self.doc.pop("comment", None)
        envelope = ticket_event(kind, "api", snapshot, occurred_at=at)
        tracker = SlaTracker(cfg, self.stored, snapshot, at)
        updated = None if self.state is None else at - timedelta(seconds=1)
        decision = decide(self.state, updated, envelope, snapshot, route, at, sla=tracker)
        assert decision.events, "every step of this test changes the ticket"
        self.state, self.stored, self.clock = decision.state, tracker.stored(), tracker.clock
        self.emitted += [payload.state.sla for _, payload in decision.events]
        sla = self.emitted[-1]
        assert self.clock is not None
        assert sla.resolution_warning_at == scanner_warning(self.clock, "resolution")
        assert sla.first_response_warning_at == scanner_warning(self.clock, "first_response")
        return sla


def test_emitted_warning_instants_are_the_scanners_through_the_lifecycle() -> None:
    t = Ticket()
    # Friday 16:00 Berlin: 1 h on Friday, the rest from Monday 09:00 Berlin (07:00 UTC).
    sla = t.event(utc(5, 14), created_at=utc(5, 14), status="new")
    assert sla.resolution_due == utc(8, 14)  # 8 business hours: Monday 16:00 Berlin
    assert sla.resolution_warning_at == utc(8, 12)  # 6 of 8: Monday 14:00 Berlin
    assert sla.first_response_warning_at == utc(8, 7, 30)  # 1.5 of 2 h
    # 75 % of the wall-clock span would be Sunday 20:00 UTC: the scanner says Monday.
    assert utc(5, 14) + (utc(8, 14) - utc(5, 14)) * 0.75 == utc(7, 20)

    # Pending on Monday 10:00 Berlin: no deadline, no warning while paused.
    sla = t.event(utc(8, 8), status="pending")
    assert (sla.paused, sla.resolution_due, sla.resolution_warning_at) == (True, None, None)
    assert sla.first_response_warning_at is None

    # Resumed Tuesday 09:00 Berlin with 2 h of 8 used: 4 h to the warning, 6 h to the deadline.
    sla = t.event(utc(9, 7), status="open")
    assert (sla.resolution_warning_at, sla.resolution_due) == (utc(9, 11), utc(9, 13))

    # P2 (4 h) at Tuesday 10:00 Berlin, 3 h used: at the warning share already, 1 h to the deadline.
    sla = t.event(utc(9, 8), priority="P2")
    assert (sla.resolution_warning_at, sla.resolution_due) == (utc(9, 8), utc(9, 9))

    # The policy's warning share changes to one half; the next event moves the warning instants.
    half = POLICY.model_copy(update={"warning_share": 0.5, "targets": POLICY.targets})
    comment = Comment(body="on it", from_agent=True).model_dump()
    sla = t.event(utc(9, 8, 15), cfg=config(half), comment=comment)
    # 3.25 h used, past 2 h; the warning was already reached at the P2 change (3 h of 4): that
    # instant stays, the recheck does not move it to now.
    assert sla.resolution_warning_at == utc(9, 8)
    assert sla.first_response_warning_at is None  # responded: that target stopped

    sla = t.event(utc(9, 8, 30), cfg=config(half), status="solved")
    assert (sla.resolution_due, sla.resolution_warning_at) == (None, None)
    # Reopened on Wednesday 09:00 Berlin: 3.5 h of 4 used, a new cycle whose warning is due at once.
    sla = t.event(utc(10, 7), cfg=config(half), status="open")
    assert sla.resolution_due == utc(10, 7, 30)
    assert sla.resolution_warning_at == utc(9, 8)  # reached in the last cycle: fires at once
    assert t.state is not None and t.state.status == TicketStatus.OPEN
    assert t.clock is not None and t.clock.cycle == 1
    assert len(t.emitted) == 7


def test_a_state_from_the_router_round_trips_through_the_contract() -> None:
    clock = SlaClock.start("api:1", POLICY, Priority.P3, utc(5, 14))
    state = clock.to_sla_state(OFFICE)
    again = SlaState.model_validate_json(state.model_dump_json())
    assert again == state and again.resolution_warning_at == utc(8, 12)
    assert again.resolution_warning_at is not None and again.resolution_warning_at.tzinfo is not None
