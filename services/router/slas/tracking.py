"""SLA clocks of tickets as the router decides: the pure glue between TicketState and SlaClock.

:class:`SlaConfig` is one immutable snapshot of the live policies (ordered) and calendars, with
each policy's ``applies_when`` compiled once as a one-rule rule set. :class:`SlaTracker` carries
one ticket's clock through a decision: :func:`decide` calls it before every routing event, so
each event's ``state.sla`` holds the deadlines after that event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.router.rules import Actions, CompiledRuleSet, Condition, Rule, RuleSet, compile_ruleset
from services.router.rules.facts import facts_from_ticket
from services.router.rules.schema import STORED
from services.router.sla import (
    BusinessCalendar,
    EscalationDue,
    SlaClock,
    SlaPolicy,
    next_escalation_at,
    pending_escalations,
)
from services.router.sla.calendar import ALWAYS_OPEN, as_utc
from services.router.sla.clock import Deadlines
from shared.events import SlaState, TicketSnapshot, TicketState


def compile_condition_set(
    name: str, condition: Mapping[str, Any], *, stored: bool = False
) -> CompiledRuleSet:
    """``applies_when`` as a one-rule rule set (raises pydantic's ValidationError when invalid).
    ``stored``: read back from a saved policy, so bounds added since (a regex's cost) do not leave
    it out of every router; saving applies them."""
    when = Condition.model_validate(condition, context=STORED if stored else None)
    rule = Rule(id="applies-when", name=name, when=when, actions=Actions(stop=True))
    return compile_ruleset(RuleSet(rules=[rule]))


@dataclass(frozen=True)
class SlaConfig:
    policies: Sequence[SlaPolicy] = ()
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)
    version: int = 0  # max id of the config versions it was built from
    # Live (stored, not deleted) policies left out of ``policies`` because their document no longer
    # validates (see load_config): they still exist, so clocks on them are kept, not re-selected.
    left_out: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        matchers = {
            p.name: compile_condition_set(p.name, p.applies_when, stored=True)
            for p in self.policies
            if p.applies_when
        }
        object.__setattr__(self, "_matchers", matchers)
        object.__setattr__(self, "_by_name", {p.name: p for p in self.policies})

    def policy_named(self, name: str | None) -> SlaPolicy | None:
        return None if name is None else self._by_name.get(name)  # type: ignore[attr-defined]

    def select(self, snapshot: TicketSnapshot, state: TicketState, at: datetime) -> SlaPolicy | None:
        """The first policy (in order) whose ``applies_when`` holds for the ticket."""
        matchers: dict[str, CompiledRuleSet] = self._matchers  # type: ignore[attr-defined]
        facts = None  # built only when a condition needs them: most tickets meet a catch-all first
        for policy in self.policies:
            matcher = matchers.get(policy.name)
            if matcher is None:
                return policy
            if facts is None:
                facts = facts_from_ticket(
                    snapshot.model_copy(update={"priority": state.priority, "status": state.status}),
                    state.source,
                    at,
                    language=state.language,
                    category=state.category,
                    category_confidence=state.category_confidence,
                )
            if matcher.evaluate(facts).matched_rules:
                return policy
        return None

    def calendar(self, name: str) -> BusinessCalendar:
        found = self.calendars.get(name)
        if found is not None:
            return found
        # "24x7", or a calendar deleted while clocks still run on it: count every hour.
        return BusinessCalendar.always_open(name=name or ALWAYS_OPEN)


class SlaTracker:
    """One ticket's clock during one decision; ``stored()`` is what goes to ``router_tickets``."""

    def __init__(
        self, config: SlaConfig, stored: Mapping[str, Any] | None, snapshot: TicketSnapshot, at: datetime
    ) -> None:
        self.config = config
        self.snapshot = snapshot
        self.at = at
        self.clock = SlaClock.model_validate(stored["clock"]) if stored and stored.get("clock") else None
        self.fired: set[str] = set(stored.get("fired", [])) if stored else set()
        # The newest configuration version the clock was computed under, by any router: one whose
        # configuration is older must not be the last to compute it (see ``behind``).
        self.computed_under: int = max(int(stored.get("config_version", 0)) if stored else 0, config.version)
        # Escalations that fell due before an event that then stopped or paused the clock, the
        # scanner not having fired them yet (see owe_due): still fired, at their due instant.
        self.owed: list[EscalationDue] = [_owed_from(entry) for entry in (stored or {}).get("owed", [])]
        # The cycle a clock started from now on takes: past every cycle of a clock this ticket had
        # and lost (its policy deleted, none other applying). Timer ids are ``ticket:target:kind:
        # cycle`` and stay in ``sla_fired_timers`` for good: a policy created again under the same
        # name, starting at cycle 0, would find its timers' ids taken, and never warn or breach.
        self.next_cycle: int = int(stored.get("next_cycle", 0)) if stored else 0
        self._known: tuple[SlaClock, BusinessCalendar, Deadlines] | None = None

    def owe_due(self) -> None:
        """Keep what the stored clock had due before this event's instant, before the event changes it.

        Called when the ticket's timer was due before the event happened: the scanner was behind
        (a router down, a backlog) and the event, applied first, may stop or pause the clock (a
        solve, a reply, pending), after which no deadline is left to fire; the warning or breach
        that happened before it, and its actions, would be lost.
        """
        if self.clock is not None:
            # Before the event's instant only: a target the event answers or solves at the very
            # instant it runs out is met, as the clock (late only past the target) and the metrics
            # count it; an event that leaves the clock running leaves such a timer to the scanner.
            self._owe_due_on(self.clock, before_event=True)

    def _owe_due_on(self, clock: SlaClock, before_event: bool = False) -> None:
        owed = {due.timer_id for due in self.owed}
        deadlines = self._deadlines(clock, self.config.calendar(clock.calendar))
        at = as_utc(self.at)
        for due in pending_escalations(clock, deadlines, self.fired):
            if due.timer_id in owed or due.due_at > at:
                continue
            if due.due_at == at and (
                before_event or (due.kind == "breach" and not getattr(clock, due.target).missed_by(at))
            ):
                # At the event's instant: met if the event answers or solves it then. Not so a
                # deadline new targets put there because the time used is already past them (a
                # retarget dates such a crossing at the change): that breach happened.
                continue
            self.owed.append(due)

    def take_owed(self) -> list[EscalationDue]:
        """The owed escalations not fired yet, handed to the scanner (which fires them now)."""
        owed, self.owed = self._unfired_owed(), []
        return owed

    def _unfired_owed(self) -> list[EscalationDue]:
        return [due for due in self.owed if due.timer_id not in self.fired]

    def __call__(self, state: TicketState) -> None:
        clock = self.clock
        policy = self.config.policy_named(state.sla.policy)
        # Unless the clock's policy is stored but not loaded (it no longer validates): re-selecting
        # would drop or swap the clock, losing consumed time and timers. Such a clock keeps its
        # targets and calendar until the policy is saved again; status changes and responses
        # still apply below.
        if clock is None or policy is not None or clock.policy not in self.config.left_out:
            policy = policy or self.config.select(self.snapshot, state, self.at)
            if policy is None:
                if clock is not None:
                    self.next_cycle = max(self.next_cycle, clock.cycle + 1)
                self.clock = None
                state.sla = SlaState(first_responded_at=state.sla.first_responded_at)
                return
            if clock is not None and self._restartable(clock, policy, state.created_at):
                # The source stated an earlier creation than the clock's start (the ticket first
                # heard of through an event stating none): the targets ran from it. Started again
                # there, in the status and priority it started with, so that what this event
                # changes applies below at the event's instant.
                clock = SlaClock.start(
                    state.ticket_key, policy, clock.priority, state.created_at, clock.status, clock.cycle
                )
            if clock is None:
                clock = SlaClock.start(
                    state.ticket_key, policy, state.priority, state.created_at, state.status, self.next_cycle
                )
            elif clock.resolved_at is None or not state.status.is_resolved:
                # A solved ticket that stays solved keeps the targets it was solved under: an edit
                # or a priority change since (seen at its close, say) would make a solve in time
                # late. A reopen takes the new ones, at its instant.
                targets = policy.targets_for(state.priority)
                if (
                    policy.name != clock.policy
                    or policy.calendar != clock.calendar
                    or state.priority != clock.priority
                    or policy.warning_share != clock.warning_share
                    # pausing_statuses too: an edit of them alone must reach running clocks
                    or policy.pausing_statuses != clock.pausing_statuses
                    # An answered first response keeps its target (SlaClock.on_priority_change):
                    # compared, it would retarget the clock at every later event.
                    or (
                        clock.first_responded_at is None
                        and targets.first_response != clock.first_response.target
                    )
                    or targets.resolution != clock.resolution.target
                ):
                    clock = clock.on_priority_change(
                        state.priority, policy, self.at, self.config.calendar(clock.calendar)
                    )
                    # New targets can put a deadline before this very event (a raised priority,
                    # a shortened target, the time used already past it); the same event may then
                    # stop or pause the clock below, which leaves no deadline for the scanner.
                    self._owe_due_on(clock)
        if state.status != clock.status:  # never for a clock just started (it has the status)
            clock = clock.on_status(state.status, self.at, self.config.calendar(clock.calendar))
        responded = state.sla.first_responded_at
        if responded is not None and clock.first_responded_at is None:
            clock = clock.on_first_response(responded, self.config.calendar(clock.calendar))
        self.clock = clock
        self.refresh(state)

    def _restartable(self, clock: SlaClock, policy: SlaPolicy, created_at: datetime) -> bool:
        """Whether ``clock`` can start again at an earlier ``created_at``: only while nothing has
        moved it since its start (no status change, response or resolution: what it measured from
        then on would be lost) and the scanner has fired nothing on it (a warning or breach sent
        stands), under the policy it runs on."""
        return (
            as_utc(created_at) < clock.started_at
            and clock.last_event_at == clock.started_at
            and clock.first_responded_at is None
            and clock.resolved_at is None
            and policy.name == clock.policy
            and not self.fired
            and not self.owed
        )

    def refresh(self, state: TicketState) -> None:
        if self.clock is not None:
            calendar = self.config.calendar(self.clock.calendar)
            state.sla = self.clock.to_sla_state(calendar, self._deadlines(self.clock, calendar), self.fired)

    def next_due(self) -> datetime | None:
        if self.clock is None:
            return None
        deadlines = self._deadlines(self.clock, self.config.calendar(self.clock.calendar))
        pending = next_escalation_at(self.clock, deadlines, self.fired)
        owed = [due.due_at for due in self._unfired_owed()]
        return min([*owed, *([pending] if pending is not None else [])], default=None)

    def deadlines(self) -> Deadlines | None:
        """The clock's deadlines on its calendar (``None`` without a clock)."""
        if self.clock is None:
            return None
        return self._deadlines(self.clock, self.config.calendar(self.clock.calendar))

    def _deadlines(self, clock: SlaClock, calendar: BusinessCalendar) -> Deadlines:
        """The clock's deadlines, worked out once per clock (clocks are frozen: a change is a new
        one): the state's due instants, the next timer and the scanner's due escalations all need
        them, each a calendar walk."""
        known = self._known
        if known is None or known[0] is not clock or known[1] is not calendar:
            known = self._known = (clock, calendar, clock.deadlines(calendar))
        return known[2]

    @property
    def behind(self) -> bool:
        """The clock was computed under a newer configuration than this router has loaded (it
        lags the watcher's poll): its deadlines may be the old ones; the scanner should recompute."""
        return self.computed_under > self.config.version

    def stored(self) -> dict[str, Any] | None:
        if self.clock is None:
            # No clock, but the cycles a lost one used are remembered (see ``next_cycle``). Readers
            # take a row without "clock" as a ticket without one (the previous release's too).
            return {"next_cycle": self.next_cycle} if self.next_cycle else None
        stored: dict[str, Any] = {
            "clock": self.clock.model_dump(mode="json"),
            "fired": sorted(self.fired),
            "config_version": self.computed_under,
        }
        owed = self._unfired_owed()
        if owed:
            stored["owed"] = [
                {
                    "kind": d.kind,
                    "target": d.target,
                    "due_at": d.due_at.isoformat(),
                    "ticket": d.ticket_key,
                    "cycle": d.cycle,
                    **({"deadline": d.deadline.isoformat()} if d.deadline is not None else {}),
                }
                for d in owed
            ]
        return stored


def _owed_from(entry: Mapping[str, Any]) -> EscalationDue:
    return EscalationDue(
        entry["kind"],
        entry["target"],
        datetime.fromisoformat(entry["due_at"]),
        entry["ticket"],
        entry["cycle"],
        datetime.fromisoformat(entry["deadline"]) if entry.get("deadline") else None,
    )


_MOVABLE = (
    ("policy", "policy"),
    ("first_response_due", "first response due"),
    ("resolution_due", "resolution due"),
    # The stored state leaves these out: the caller sets them on ``before`` (see with_warnings).
    ("first_response_warning_at", "first response warning"),
    ("resolution_warning_at", "resolution warning"),
)


def with_warnings(state: SlaState, deadlines: Deadlines | None) -> SlaState:
    """``state`` with the warning instants of ``deadlines`` (a stored state leaves them out, as
    they are recomputed for every event): what :func:`sla_moves` compares a recomputation with."""
    if deadlines is None:
        return state
    return state.model_copy(
        update={
            "first_response_warning_at": deadlines.first_response_warning_at,
            "resolution_warning_at": deadlines.resolution_warning_at,
        }
    )


def sla_moves(before: SlaState, after: SlaState) -> list[str]:
    """What a recomputation changed, one reason each: ``resolution due A -> B``."""

    def shown(value: object) -> str:
        if value is None:
            return "none"
        return value.isoformat() if isinstance(value, datetime) else str(value)

    return [
        f"{label} {shown(old)} -> {shown(new)}"
        for attribute, label in _MOVABLE
        if (old := getattr(before, attribute)) != (new := getattr(after, attribute))
    ]
