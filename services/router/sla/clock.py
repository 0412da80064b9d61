"""The SLA clock of one ticket: an immutable, JSON-serialisable state machine.

Every transition returns a new :class:`SlaClock`. Each one first *checkpoints*: business time
since ``last_event_at`` is added to the targets that were running, so time between two events
is always spent in a single state and deadlines are "remaining business time from the last
resume point". Transitions therefore need the calendar the clock currently runs on.

Semantics (common helpdesk behaviour):

* both targets run from creation; statuses in ``pausing_statuses`` (pending, on_hold by
  default) pause them; solved/closed stop them;
* the first-response target stops for good at the first agent response;
* a reopen starts a new escalation *cycle* and the resolution clock **continues** from the
  business time already consumed, it does not restart. A ticket reopened past its deadline is
  therefore overdue at once and its breach escalation fires again in the new cycle;
* a priority (or policy) change keeps consumed time and swaps the targets; deadlines move.
  If the new target is already exceeded, the ticket counts as overdue since the change, unless
  that threshold had already been reached before it: then the earlier instant is kept (a real
  crossing, already fired and counted; a recheck must not move a breach to the scan time). An
  unchanged threshold keeps its instant as well. An answered first response keeps the target
  it was answered under: its verdict stands;
* a clock started again for a ticket whose clock was dropped (its policy deleted, then created
  again under the same name) starts at the cycle after the dropped one's, so its thresholds fire
  again (timer ids carry the cycle);
* ``breached`` is sticky across cycles (it is a fact about the ticket), ``warning_sent`` is
  per cycle;
* events older than ``last_event_at`` are treated as happening at ``last_event_at``, so time
  never runs backwards.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.router.sla.calendar import BusinessCalendar, add_business_time, as_utc, business_time_between
from services.router.sla.policy import DEFAULT_PAUSING_STATUSES, SlaPolicy
from shared.events import Priority, SlaState, TicketStatus

EscalationKind = Literal["warning", "breach"]
TargetName = Literal["first_response", "resolution"]
TARGETS: tuple[TargetName, ...] = ("first_response", "resolution")

_ZERO = timedelta(0)


class TargetClock(BaseModel):
    """Consumed business time against one target, and when its thresholds were reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: timedelta | None = None
    consumed: timedelta = _ZERO
    warning_reached_at: datetime | None = None
    due_reached_at: datetime | None = None

    def thresholds(self, share: float) -> tuple[timedelta, timedelta] | None:
        return None if self.target is None else (self.target * share, self.target)

    def advance(
        self, calendar: BusinessCalendar, start: datetime, end: datetime, share: float
    ) -> TargetClock:
        elapsed = business_time_between(calendar, start, end)
        if elapsed <= _ZERO:
            return self
        before, after = self.consumed, self.consumed + elapsed
        update: dict[str, Any] = {"consumed": after}
        thresholds = self.thresholds(share)
        if thresholds is not None:
            # Record the exact crossing instants so past deadlines stay exact after later events.
            for field, threshold in zip(("warning_reached_at", "due_reached_at"), thresholds, strict=True):
                if before < threshold <= after:
                    update[field] = add_business_time(calendar, start, threshold - before)
        return self.model_copy(update=update)

    def retarget(self, target: timedelta | None, share: float, old_share: float, at: datetime) -> TargetClock:
        if target == self.target and share == old_share:
            return self
        moved = self.model_copy(update={"target": target, "warning_reached_at": None, "due_reached_at": None})
        thresholds = moved.thresholds(share)
        if thresholds is None:
            return moved
        old_thresholds = self.thresholds(old_share) or (None, None)
        update: dict[str, Any] = {}
        for field, threshold, old_threshold in zip(
            ("warning_reached_at", "due_reached_at"), thresholds, old_thresholds, strict=True
        ):
            reached: datetime | None = getattr(self, field)
            if threshold == old_threshold:
                update[field] = reached  # nothing moved for this threshold
            elif self.consumed < threshold:
                update[field] = None
            else:
                # Already past the new threshold: an instant reached before the change is a real
                # crossing (fired, counted by metrics) and stays; a newly exceeded one is the change.
                update[field] = reached or at
        return moved.model_copy(update=update)

    def due_times(
        self, calendar: BusinessCalendar, resume_at: datetime, share: float
    ) -> tuple[datetime | None, datetime | None]:
        """``(warning_at, due_at)`` assuming the target runs from ``resume_at``."""
        thresholds = self.thresholds(share)
        if thresholds is None:
            return None, None
        reached = (self.warning_reached_at, self.due_reached_at)
        out: list[datetime] = []
        for threshold, reached_at in zip(thresholds, reached, strict=True):
            if self.consumed >= threshold:
                out.append(reached_at or resume_at)
            else:
                out.append(add_business_time(calendar, resume_at, threshold - self.consumed))
        return out[0], out[1]

    def missed_by(self, at: datetime) -> bool:
        """Whether an answer or solve at ``at`` misses the target: more time used than it gives,
        or all of it used up at an instant before ``at``. On business hours the time used stops
        when the calendar closes, so a solve after a deadline that fell at closing time has used
        exactly the target: it is late all the same, as the scanner (which fires on the wall
        clock, past the deadline) and an owed breach say."""
        if self.target is None or self.consumed < self.target:
            return False
        return self.consumed > self.target or (self.due_reached_at is not None and at > self.due_reached_at)


def timer_id(ticket_key: str, target: TargetName, kind: EscalationKind, cycle: int) -> str:
    """The id a fired escalation is remembered by (``ticket:target:kind:cycle``)."""
    return f"{ticket_key}:{target}:{kind}:{cycle}"


def breached_targets(fired: Collection[str]) -> set[str]:
    """The targets whose breach fired, in any cycle, among the :func:`timer_id` ids ``fired``."""
    parts = (timer.rsplit(":", 3) for timer in fired)
    return {p[1] for p in parts if len(p) == 4 and p[2] == "breach"}


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Due instants (UTC); ``None`` while paused, when met or stopped, or without a target."""

    first_response_due: datetime | None = None
    first_response_warning_at: datetime | None = None
    resolution_due: datetime | None = None
    resolution_warning_at: datetime | None = None

    @property
    def warning_at(self) -> datetime | None:
        """The earliest pending warning instant of either target."""
        found = [w for w in (self.first_response_warning_at, self.resolution_warning_at) if w is not None]
        return min(found, default=None)

    def due(self, target: TargetName, kind: EscalationKind) -> datetime | None:
        if target == "first_response":
            return self.first_response_warning_at if kind == "warning" else self.first_response_due
        return self.resolution_warning_at if kind == "warning" else self.resolution_due


class SlaClock(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_key: str = Field(min_length=1)
    policy: str
    calendar: str  # name of the calendar the clock runs on; transitions check it
    priority: Priority
    warning_share: float = Field(default=0.75, gt=0, lt=1)
    pausing_statuses: frozenset[TicketStatus] = DEFAULT_PAUSING_STATUSES
    status: TicketStatus
    started_at: datetime
    last_event_at: datetime  # the last checkpoint = the last resume point while running
    cycle: int = 0
    first_response: TargetClock
    resolution: TargetClock
    first_responded_at: datetime | None = None
    resolved_at: datetime | None = None
    warning_sent: bool = False
    breached: bool = False

    @field_validator("started_at", "last_event_at", "first_responded_at", "resolved_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @classmethod
    def start(
        cls,
        ticket_key: str,
        policy: SlaPolicy,
        priority: Priority,
        at: datetime,
        status: TicketStatus = TicketStatus.NEW,
        cycle: int = 0,
    ) -> SlaClock:
        """``cycle``: above 0 for a ticket that had a clock before (its policy deleted), so that
        this one's timer ids differ from those fired under the old one."""
        at = as_utc(at)
        targets = policy.targets_for(priority)
        return cls(
            ticket_key=ticket_key,
            policy=policy.name,
            calendar=policy.calendar,
            priority=priority,
            warning_share=policy.warning_share,
            pausing_statuses=policy.pausing_statuses,
            status=status,
            started_at=at,
            last_event_at=at,
            cycle=cycle,
            first_response=TargetClock(target=targets.first_response),
            resolution=TargetClock(target=targets.resolution),
            resolved_at=at if status.is_resolved else None,
        )

    @property
    def paused(self) -> bool:
        return self.resolved_at is None and self.status in self.pausing_statuses

    @property
    def resolution_running(self) -> bool:
        return self.resolved_at is None and not self.paused

    @property
    def first_response_running(self) -> bool:
        return self.resolution_running and self.first_responded_at is None

    def _checkpoint(self, calendar: BusinessCalendar, at: datetime) -> tuple[SlaClock, datetime]:
        if calendar.name != self.calendar:
            raise ValueError(f"clock runs on calendar {self.calendar!r}, got {calendar.name!r}")
        at = max(as_utc(at), self.last_event_at)
        update: dict[str, Any] = {"last_event_at": at}
        if self.first_response_running:
            update["first_response"] = self.first_response.advance(
                calendar, self.last_event_at, at, self.warning_share
            )
        if self.resolution_running:
            update["resolution"] = self.resolution.advance(
                calendar, self.last_event_at, at, self.warning_share
            )
        return self.model_copy(update=update), at

    def checkpoint(self, calendar: BusinessCalendar, at: datetime) -> SlaClock:
        """The clock with the business time up to ``at`` counted on ``calendar``, nothing else
        changed: before the calendar it runs on is edited, so that the time before the edit is
        not counted on the new hours."""
        return self._checkpoint(calendar, at)[0]

    def on_status(self, status: TicketStatus, at: datetime, calendar: BusinessCalendar) -> SlaClock:
        clock, at = self._checkpoint(calendar, at)
        if clock.resolved_at is not None and not status.is_resolved:
            return clock._reopened(status)
        update: dict[str, Any] = {"status": status}
        if clock.resolved_at is None and status.is_resolved:
            update["resolved_at"] = at
            # Solved late, or solved with no reply after the first-response target ran out.
            unanswered_late = clock.first_responded_at is None and clock.first_response.missed_by(at)
            update["breached"] = clock.breached or clock.resolution.missed_by(at) or unanswered_late
        return clock.model_copy(update=update)

    def on_first_response(self, at: datetime, calendar: BusinessCalendar) -> SlaClock:
        if self.first_responded_at is not None:
            return self
        clock, at = self._checkpoint(calendar, at)
        return clock.model_copy(
            update={
                "first_responded_at": at,
                "breached": clock.breached or clock.first_response.missed_by(at),
            }
        )

    def on_priority_change(
        self, priority: Priority, policy: SlaPolicy, at: datetime, calendar: BusinessCalendar
    ) -> SlaClock:
        """Swap targets (and policy) keeping consumed time; ``calendar`` is the *current* one.

        When the new policy uses another calendar, time up to ``at`` is counted on the old one
        and the deadlines afterwards on the new one.
        """
        clock, at = self._checkpoint(calendar, at)
        targets = policy.targets_for(priority)
        share = policy.warning_share
        # An answered first response stopped for good under the target then in force: judged by
        # a target set afterwards, a reply in time turned breached when the priority was raised.
        first_response = (
            clock.first_response
            if clock.first_responded_at is not None
            else clock.first_response.retarget(targets.first_response, share, clock.warning_share, at)
        )
        return clock.model_copy(
            update={
                "priority": priority,
                "policy": policy.name,
                "calendar": policy.calendar,
                "warning_share": share,
                "pausing_statuses": policy.pausing_statuses,
                "first_response": first_response,
                "resolution": clock.resolution.retarget(targets.resolution, share, clock.warning_share, at),
            }
        )

    def on_reopen(
        self, at: datetime, calendar: BusinessCalendar, status: TicketStatus = TicketStatus.OPEN
    ) -> SlaClock:
        """Start a new cycle; the resolution clock continues from its consumed time."""
        if status.is_resolved:
            raise ValueError("a ticket cannot be reopened into a resolved status")
        clock, _ = self._checkpoint(calendar, at)
        if clock.resolved_at is None:
            return clock.model_copy(update={"status": status})
        return clock._reopened(status)

    def _reopened(self, status: TicketStatus) -> SlaClock:
        return self.model_copy(
            update={"status": status, "resolved_at": None, "cycle": self.cycle + 1, "warning_sent": False}
        )

    def on_escalation_fired(self, kind: EscalationKind) -> SlaClock:
        """Record a fired escalation for :meth:`to_sla_state`; timer ids live with the caller."""
        if kind == "warning":
            return self.model_copy(update={"warning_sent": True})
        return self.model_copy(update={"warning_sent": True, "breached": True})

    def deadlines(self, calendar: BusinessCalendar) -> Deadlines:
        if calendar.name != self.calendar:
            raise ValueError(f"clock runs on calendar {self.calendar!r}, got {calendar.name!r}")
        fr_warn = fr_due = res_warn = res_due = None
        if self.first_response_running:
            fr_warn, fr_due = self.first_response.due_times(calendar, self.last_event_at, self.warning_share)
        if self.resolution_running:
            res_warn, res_due = self.resolution.due_times(calendar, self.last_event_at, self.warning_share)
        return Deadlines(fr_due, fr_warn, res_due, res_warn)

    def consumed_at(self, calendar: BusinessCalendar, now: datetime) -> dict[TargetName, timedelta]:
        """Business time consumed per target up to ``now`` (for display and gauges)."""
        clock, _ = self._checkpoint(calendar, now)
        return {"first_response": clock.first_response.consumed, "resolution": clock.resolution.consumed}

    def to_sla_state(
        self, calendar: BusinessCalendar, deadlines: Deadlines | None = None, fired: Collection[str] = ()
    ) -> SlaState:
        """``deadlines``: this clock's on ``calendar``, when the caller already has them; ``fired``:
        the ticket's fired timer ids (``ticket:target:kind:cycle``).

        The warning instants are the ones the escalation scanner fires at (both come from
        :meth:`deadlines`), so consumers such as the metrics' at-risk gauge agree with it. Each
        target's verdict is breached once its time used passed the target (at an event's own
        instant) or its breach fired (in any cycle; a target moved later since keeps it): what the
        router tells and acts on, and so what the metrics count."""
        if deadlines is None:
            deadlines = self.deadlines(calendar)
        # Each target judged at the instant its clock stopped (answered, solved), else at the last
        # event: a later event (a comment on a solved ticket) does not make a met target late.
        resolution_stopped = self.resolved_at or self.last_event_at
        first_response_stopped = self.first_responded_at or resolution_stopped
        fired_breaches = breached_targets(fired)
        return SlaState(
            policy=self.policy,
            first_response_due=deadlines.first_response_due,
            first_response_warning_at=deadlines.first_response_warning_at,
            resolution_due=deadlines.resolution_due,
            resolution_warning_at=deadlines.resolution_warning_at,
            first_responded_at=self.first_responded_at,
            warning_sent=self.warning_sent,
            breached=self.breached,
            first_response_breached=self.first_response.missed_by(first_response_stopped)
            or "first_response" in fired_breaches,
            resolution_breached=self.resolution.missed_by(resolution_stopped)
            or "resolution" in fired_breaches,
            paused=self.paused,
        )
