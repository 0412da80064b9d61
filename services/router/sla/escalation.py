"""Escalation timers (which warnings/breaches are due) and their effects on a ticket.

Firing exactly once is the caller's job, made easy: every due escalation carries a
deterministic ``timer_id`` (``ticket:target:kind:cycle``). The router inserts it under a unique
constraint before acting, so with several router instances only the one whose insert succeeds
applies the actions. A reopen bumps the cycle, so the same thresholds may fire again; so does a
clock started again after its policy was deleted (``SlaTracker.next_cycle``), whose ids would
otherwise be those fired under the old policy.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from services.router.sla.calendar import as_utc
from services.router.sla.clock import TARGETS, Deadlines, EscalationKind, SlaClock, TargetName, timer_id
from services.router.sla.policy import AddTag, Notify, RaisePriority, ReassignTo, SlaPolicy
from shared.events import Priority

_KINDS: tuple[EscalationKind, ...] = ("warning", "breach")


@dataclass(frozen=True, slots=True)
class EscalationDue:
    kind: EscalationKind
    target: TargetName
    due_at: datetime
    ticket_key: str
    cycle: int
    # A warning's target deadline (when its clock had one): what the warning warns of.
    deadline: datetime | None = None

    @property
    def timer_id(self) -> str:
        return timer_id(self.ticket_key, self.target, self.kind, self.cycle)


def pending_escalations(
    clock: SlaClock, deadlines: Deadlines, already_fired: set[str]
) -> list[EscalationDue]:
    """Every escalation of the clock's deadlines not fired yet, due or not, in firing order."""
    out = []
    for target in TARGETS:
        for kind in _KINDS:
            due_at = deadlines.due(target, kind)
            if due_at is None or timer_id(clock.ticket_key, target, kind, clock.cycle) in already_fired:
                continue
            deadline = deadlines.due(target, "breach") if kind == "warning" else None
            out.append(EscalationDue(kind, target, due_at, clock.ticket_key, clock.cycle, deadline))
    # Chronological; at equal instants a warning precedes its breach.
    out.sort(key=lambda d: (d.due_at, _KINDS.index(d.kind), TARGETS.index(d.target)))
    return out


def due_escalations(
    clock: SlaClock, deadlines: Deadlines, now: datetime, already_fired: set[str]
) -> list[EscalationDue]:
    """Escalations due at ``now`` and not yet fired (ids in ``already_fired``).

    A late run (router down past both thresholds) returns the warning and the breach together.
    A breach is due once its instant has passed, not at it: a target answered or solved at the very
    instant it runs out is met (the clock is late only past the target, and so the metrics count
    it), and a breach fired at that instant, before such a solve was routed, would stay on the
    ticket. A warning is due at its instant (the metrics' at-risk gauge turns then too).
    """
    now = as_utc(now)
    return [
        d
        for d in pending_escalations(clock, deadlines, already_fired)
        if d.due_at < now or (d.due_at == now and d.kind == "warning")
    ]


def next_escalation_at(clock: SlaClock, deadlines: Deadlines, already_fired: set[str]) -> datetime | None:
    """When to wake up next for this ticket (may be in the past: fire at once)."""
    pending = pending_escalations(clock, deadlines, already_fired)
    return pending[0].due_at if pending else None


_RAISED: dict[Priority, Priority] = {
    Priority.P4: Priority.P3,
    Priority.P3: Priority.P2,
    Priority.P2: Priority.P1,
    Priority.P1: Priority.P1,
}


def raise_priority(priority: Priority) -> Priority:
    return _RAISED[priority]


@dataclass(frozen=True, slots=True)
class EscalationEffects:
    priority: Priority
    team: str | None
    tags: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    skipped_teams: list[str] = field(default_factory=list)  # reassignments to teams not in ``teams``


def apply_escalation_actions(
    policy: SlaPolicy,
    kind: Literal["warning", "breach"],
    current_priority: Priority,
    current_team: str | None,
    teams: Container[str] | None = None,
) -> EscalationEffects:
    """Fold the policy's actions for ``kind`` in order: each raise is one step, the last reassign wins.

    ``teams``: the teams a ticket may be reassigned to (the active ones); a reassignment to any
    other is skipped and listed in ``skipped_teams``. None: every reassignment applies."""
    priority, team = current_priority, current_team
    tags: list[str] = []
    notifications: list[str] = []
    skipped: list[str] = []
    for action in policy.actions_for(kind):
        match action:
            case RaisePriority():
                priority = raise_priority(priority)
            case ReassignTo(team=new_team) if teams is not None and new_team not in teams:
                skipped.append(new_team)
            case ReassignTo(team=new_team):
                team = new_team
            case AddTag(tag=tag):
                tag = tag.strip().lower()  # normalised like TicketSnapshot tags
                if tag and tag not in tags:  # blank: stored before the admin API refused it
                    tags.append(tag)
            case Notify(target=target):
                if target not in notifications:
                    notifications.append(target)
    return EscalationEffects(priority, team, tags, notifications, skipped)
