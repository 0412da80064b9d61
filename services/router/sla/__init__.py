"""Pure SLA logic: business calendars, policies, the per-ticket clock, escalations, priority matrix."""

from services.router.sla.calendar import (
    ALWAYS_OPEN,
    BusinessCalendar,
    Holiday,
    Interval,
    add_business_time,
    business_time_between,
)
from services.router.sla.clock import Deadlines, SlaClock, TargetClock
from services.router.sla.escalation import (
    EscalationDue,
    EscalationEffects,
    apply_escalation_actions,
    due_escalations,
    next_escalation_at,
    pending_escalations,
)
from services.router.sla.policy import PriorityTargets, SlaPolicy, resolve_calendar, select_policy
from services.router.sla.priority import DEFAULT_MATRIX, Level, PriorityMatrix, priority_for

__all__ = [
    "ALWAYS_OPEN",
    "DEFAULT_MATRIX",
    "BusinessCalendar",
    "Deadlines",
    "EscalationDue",
    "EscalationEffects",
    "Holiday",
    "Interval",
    "Level",
    "PriorityMatrix",
    "PriorityTargets",
    "SlaClock",
    "SlaPolicy",
    "TargetClock",
    "add_business_time",
    "apply_escalation_actions",
    "business_time_between",
    "due_escalations",
    "next_escalation_at",
    "pending_escalations",
    "priority_for",
    "resolve_calendar",
    "select_policy",
]
