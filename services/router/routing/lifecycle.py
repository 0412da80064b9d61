"""What a ticket event does to a ticket: a pure function of the old state and the event.

No I/O here: the handler loads the current state, calls :func:`decide`, and persists and
publishes what it returns. Routing itself (rules, classifier, load) is behind ``route``, so the
lifecycle can be tested with any routing function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import TypeAdapter

from services.router.teams.schemas import RESERVED_TEAM_NAMES
from services.router.writeback.connectors.common import is_router_note
from shared.events import (
    Comment,
    EventEnvelope,
    EventType,
    Priority,
    RoutingPayload,
    TicketSnapshot,
    TicketState,
    TicketStatus,
    UtcDatetime,
    assume_utc,
)
from shared.frozen import frozen


@frozen
class RouteResult:
    """The outcome of routing one ticket (rules, classifier and load already applied)."""

    team: str | None  # None: triage
    priority: Priority | None = None
    rule: str | None = None
    ruleset_version: int | None = None
    reasons: list[str] = field(default_factory=list)
    category: str | None = None
    category_confidence: float | None = None
    language: str | None = None
    sla_policy: str | None = None
    tags: list[str] = field(default_factory=list)
    urgency: int | None = None  # 1-4, 4 the most severe (rules or classifier)
    impact: int | None = None
    # ``priority`` came from urgency x impact (no rule set one): a fallback, see _apply_route.
    priority_derived: bool = False


RouteFn = Callable[[TicketSnapshot, str], RouteResult]


@runtime_checkable
class PreparesBatch(Protocol):
    """A route function that can do a batch's text work (language, models) in one go, given the
    (subject, description) of the tickets it will probably route; routing a ticket whose text was
    not prepared still works, at the single-ticket cost."""

    def prepare(self, texts: Sequence[tuple[str, str]]) -> None: ...


@runtime_checkable
class EvaluatesAhead(Protocol):
    """A route function that can evaluate new tickets (snapshot, source) before their batch's
    turn, once their text is prepared; it routes those same snapshot objects with the result."""

    def evaluate_ahead(self, tickets: Sequence[tuple[TicketSnapshot, str]]) -> None: ...


# Called with the state just before each routing event is emitted (and on first sight): the
# router's SLA tracker refreshes ``state.sla`` there, so every event carries its deadlines.
StateHook = Callable[[TicketState], None]


@dataclass
class Decision:
    """The new state, and the routing events to publish (each with the state after it)."""

    state: TicketState
    events: list[tuple[EventType, RoutingPayload]] = field(default_factory=list)
    stale: bool = False  # the event was older than what we know; nothing changed


def _policy_reason(policy: str, named_by_rule: str | None) -> str:
    how = "named by the rule" if policy == named_by_rule else "the first policy whose applies_when holds"
    return f"SLA policy {policy}: {how}"


def _added_tags(result: RouteResult, snapshot: TicketSnapshot) -> list[str]:
    return [tag for tag in result.tags if tag not in snapshot.tags]


def _tagged(reasons: list[str], added: list[str]) -> list[str]:
    return [*reasons, f"tagged {', '.join(added)}"] if added else reasons


DEFAULT_PRIORITY = Priority.P3
_WAITING = frozenset({TicketStatus.PENDING, TicketStatus.ON_HOLD})
# A ticket's team is stored in 100 characters (router_tickets.team, routing_decisions.team).
TEAM_NAME_MAX = 100


def is_first_response(comment: Comment | None) -> bool:
    """A reply the requester sees: an internal note (an agent's, or the note our own write-back
    adds to explain the routing, whatever the helpdesk calls it) leaves the first-response clock
    running."""
    return comment is not None and comment.from_agent and comment.public and not is_router_note(comment.body)


def copy_state(state: TicketState) -> TicketState:
    """A copy as independent as ``model_copy(deep=True)``, at a fraction of its cost.

    Every field of TicketState and SlaState is immutable except the nested ``sla`` model, so
    copying the two models shallowly is enough; assigning through ``__dict__`` keeps the
    fields-set bookkeeping the same as a deep copy's.
    """
    copied = state.model_copy()
    copied.__dict__["sla"] = state.sla.model_copy()
    return copied


def decide(
    current: TicketState | None,
    current_updated_at: datetime | None,
    envelope: EventEnvelope,
    snapshot: TicketSnapshot,
    route: RouteFn,
    now: datetime,
    sla: StateHook | None = None,
    said_priority_before: str | None = None,
    said_group_before: str | None = None,
) -> Decision:
    """``said_priority_before``: the priority the source gave in its previous events (the stored
    snapshot's), so that a source repeating it does not undo a priority the router chose.
    ``said_group_before``: likewise the helpdesk group its previous events reported (named as our
    team where it stands for one), so that an event of any type whose group differs is read as a
    move in the helpdesk, and one repeating it (the group before our write-back landed) is not."""
    # Sources can deliver out of order; never let an older snapshot overwrite a newer one.
    if current_updated_at is not None:
        current_updated_at = assume_utc(current_updated_at)  # may be stored naive by older versions
    if (
        current is not None
        and current_updated_at
        and snapshot.updated_at
        and snapshot.updated_at < current_updated_at
    ):
        return Decision(state=current, stale=True)

    if current is None:
        return _first_sight(envelope, snapshot, route, now, sla)

    state = copy_state(current)
    events: list[tuple[EventType, RoutingPayload]] = []
    previous = (current.team, current.status, current.priority)
    named_policy: str | None = None  # the SLA policy a rule named, when this event is routed

    def emit(kind: EventType, reasons: list[str], **extra: object) -> None:
        state.revision += 1
        if sla is not None:
            sla(state)
        if state.sla.policy is not None and state.sla.policy != current.sla.policy:
            reasons = [*reasons, _policy_reason(state.sla.policy, named_policy)]
        payload = RoutingPayload(
            state=copy_state(state),
            previous_team=previous[0],
            previous_status=previous[1],
            previous_priority=previous[2],
            reasons=reasons,
            caused_by=envelope.event_id,
            **extra,
        )
        events.append((kind, payload))

    def leave_triage(reasons: list[str]) -> bool:
        """Route a ticket waiting in triage again (rules may have changed); True when it got a team."""
        nonlocal named_policy
        result = route(snapshot, envelope.source)
        if result.team is None:
            return False
        named_policy = result.sla_policy
        kept = _apply_route(state, result, now)
        added = _added_tags(result, snapshot)
        emit(
            EventType.TICKET_ROUTED,
            _tagged([*reasons, *result.reasons, *kept], added),
            rule=result.rule,
            ruleset_version=result.ruleset_version,
        )
        return True

    was_resolved = current.status.is_resolved
    status = snapshot.status
    # A "new" status on an update says nothing new; keep what we have unless it is resolved, or
    # waiting: "new" again after pending or on hold (Jira's To Do, the API's "new") is the ticket
    # back on support's side, open, or its SLA clock stayed paused and no team's load counted it.
    # Not from a ticket.created: one delivered late would take the ticket out of waiting.
    if status == TicketStatus.NEW and not was_resolved:
        waiting = current.status in _WAITING and envelope.type != EventType.TICKET_CREATED
        status = TicketStatus.OPEN if waiting else current.status

    # What the event says besides its status applies whatever the status does: a reply sent with
    # "solve", a priority raised on reopening (the source would not say it again).
    reasons = _apply_changes(state, current, envelope, snapshot, said_priority_before, said_group_before)
    if not was_resolved and status.is_resolved:
        state.status = status
        state.resolved_at = envelope.occurred_at
        emit(EventType.TICKET_RESOLVED, [f"source marked the ticket {status.value}", *reasons])
        return Decision(state, events)
    if was_resolved and not status.is_resolved:
        state.status = status if status != TicketStatus.NEW else TicketStatus.OPEN
        state.resolved_at = None
        emit(EventType.TICKET_REOPENED, ["source reopened the ticket", *reasons])
        if state.team is None:
            # Reopened in triage: another chance, as at every update (then routed from the reopened state).
            previous = (state.team, state.status, state.priority)
            leave_triage([])
        return Decision(state, events)

    if status != current.status:
        state.status = status
        reasons.insert(0, f"status {current.status.value} -> {status.value}")
    # Tickets waiting in triage get another chance at every update (rules may have changed).
    if state.team is None and not state.status.is_resolved and leave_triage(reasons):
        return Decision(state, events)
    if reasons:
        emit(EventType.TICKET_STATE_CHANGED, reasons)
    return Decision(state, events)


def _apply_changes(
    state: TicketState,
    current: TicketState,
    envelope: EventEnvelope,
    snapshot: TicketSnapshot,
    said_priority_before: str | None,
    said_group_before: str | None = None,
) -> list[str]:
    """The event's priority, team and first response onto ``state``; the reasons for each."""
    reasons: list[str] = []
    if (
        snapshot.priority is not None
        and snapshot.priority != said_priority_before
        and snapshot.priority != current.priority
    ):
        state.priority = snapshot.priority
        reasons.append(f"source set priority {snapshot.priority.value}")
    external_team = snapshot.external_assignee_group
    if external_team and external_team != current.team and _moved(envelope, external_team, said_group_before):
        refused = _not_a_team(external_team)
        if refused is not None:
            reasons.append(refused)
        else:
            state.team = external_team
            reasons.append(f"reassigned in the source system to {external_team}")
    created = snapshot.created_at
    if created is not None and created < assume_utc(current.created_at):
        # The helpdesk's earliest stated creation wins: the ticket was first heard of through an
        # event that stated none (created when heard of), or one stating a later instant. Ages
        # and a clock nothing has moved yet run from it (see SlaTracker); a later instant is no
        # correction (a re-sent created event, a clock running fast: it existed before).
        state.created_at = created
        reasons.append(f"source says the ticket was created at {created.isoformat()}")
    if is_first_response(snapshot.comment) and state.sla.first_responded_at is None:
        state.sla.first_responded_at = envelope.occurred_at
        reasons.append("first agent response")
    return reasons


def _moved(envelope: EventEnvelope, group: str, said_before: str | None) -> bool:
    """Whether an event that reports the ticket in ``group`` (not its team) says a human moved it.

    A reassignment says so by its type. Any other event, from a helpdesk that sends every change
    as an update, says so when its group differs from the one the source said before: a full
    snapshot repeats the group the ticket had before our write-back landed, which is no move, and
    our write-back's echo reports the group standing for the team we chose, which equals it. A
    group said for the first time is no move either (a partial webhook's source may never have
    named the group before), nor is a ``ticket.created``: it tells the group the ticket was
    created in, and one redelivered late would move the ticket back.
    """
    if envelope.type == EventType.TICKET_REASSIGNED_EXTERNALLY:
        return True
    return envelope.type != EventType.TICKET_CREATED and said_before is not None and group != said_before


def _not_a_team(group: str) -> str | None:
    """Why a group a human moved the ticket to is not taken as its team (the reason the decision
    records, the ticket staying where it was), or None. A group no mapping names is otherwise
    taken by its name, as the helpdesk's own team."""
    if len(group) > TEAM_NAME_MAX:
        # No team of ours has such a name, and storing it would fail the whole batch.
        return f"reassigned in the source system to a group named {group[:40]!r}...: kept"
    if group in RESERVED_TEAM_NAMES:
        # The metrics count tickets without a team, and those beyond their label cap, under these
        # names: a ticket "in" one would be counted there (and one in "triage" never routed again).
        return (
            f"reassigned in the source system to a group named {group!r}, "
            "a name reserved for the metrics' labels: kept"
        )
    return None


def _reassigned_to(envelope: EventEnvelope, snapshot: TicketSnapshot) -> tuple[str | None, str | None]:
    """The team a ``ticket.reassigned_externally`` event moves the ticket to, if it names one we
    can take; else why the group it names is not taken (None for any other event)."""
    group = snapshot.external_assignee_group
    if envelope.type != EventType.TICKET_REASSIGNED_EXTERNALLY or not group:
        return None, None
    refused = _not_a_team(group)
    return (None, refused) if refused is not None else (group, None)


def _first_sight(
    envelope: EventEnvelope, snapshot: TicketSnapshot, route: RouteFn, now: datetime, sla: StateHook | None
) -> Decision:
    result = route(snapshot, envelope.source)
    moved_to, refused = _reassigned_to(envelope, snapshot)
    if refused is not None:
        result = replace(result, reasons=[*result.reasons, refused])
    if moved_to is not None and moved_to != result.team:
        # First heard of as a human's move in the helpdesk (a ticket older than the router, a
        # created event lost or late): the move stands; the rules still give what else they set.
        chose = f"team {result.team}" if result.team is not None else "triage"
        result = replace(
            result,
            team=moved_to,
            reasons=[
                *result.reasons,
                f"reassigned in the source system to {moved_to}: kept over the rules' {chose}",
            ],
        )
    # Seen first already solved (a history import): routed open, then resolved at the instant the
    # source reports. A routed state that said solved, without that instant, was counted resolved
    # at the moment it was read (a ticket solved in a day measured as its age at the import).
    resolved = snapshot.status.is_resolved
    status = TicketStatus.OPEN if resolved or snapshot.status == TicketStatus.NEW else snapshot.status
    # Built in one go: each field set on a model afterwards costs ~0.5 µs (the router's hot path).
    state = TicketState(
        ticket_key=envelope.ticket_key,
        source=envelope.source,
        revision=1,
        status=status,
        created_at=snapshot.created_at or envelope.occurred_at,
        priority=_first(result.priority, snapshot.priority, DEFAULT_PRIORITY),
        **_route_fields(result, now),
    )
    added = _added_tags(result, snapshot)
    reasons = _tagged(result.reasons, added)
    if is_first_response(snapshot.comment):  # the first we hear of it is an agent's reply
        state.sla.first_responded_at = envelope.occurred_at
        reasons = [*reasons, "first agent response"]
    if result.sla_policy:
        state.sla.policy = result.sla_policy
    if sla is not None:
        sla(state)
    if state.sla.policy is not None:
        reasons = [*reasons, _policy_reason(state.sla.policy, result.sla_policy)]
    routed = RoutingPayload(
        # The state changes after this event only to be resolved next; otherwise it is the
        # decision's final state, which the event may share (the copy was ~3 µs a ticket).
        state=copy_state(state) if resolved else state,
        rule=result.rule,
        ruleset_version=result.ruleset_version,
        reasons=reasons,
        caused_by=envelope.event_id,
        history_import=resolved,  # no live routing: consumers count no routing or time to route
    )
    events: list[tuple[EventType, RoutingPayload]] = [(EventType.TICKET_ROUTED, routed)]
    if resolved:
        state.revision += 1
        state.status = snapshot.status
        state.resolved_at = envelope.occurred_at
        if sla is not None:
            sla(state)
        events.append(
            (
                EventType.TICKET_RESOLVED,
                RoutingPayload(
                    state=copy_state(state),
                    previous_team=state.team,
                    previous_status=TicketStatus.OPEN,
                    reasons=[f"source marked the ticket {snapshot.status.value}"],
                    caused_by=envelope.event_id,
                    history_import=True,
                ),
            )
        )
    return Decision(state, events)


def _route_fields(result: RouteResult, now: datetime) -> dict[str, Any]:
    """The state fields every route sets."""
    return {
        "team": result.team,
        "category": result.category,
        "category_confidence": result.category_confidence,
        "language": result.language,
        "routed_at": now,
    }


def _apply_route(state: TicketState, result: RouteResult, now: datetime) -> list[str]:
    """A routing of a ticket that has a priority already (it left triage); why a priority the
    route derived was not taken, if so."""
    for name, value in _route_fields(result, now).items():
        setattr(state, name, value)
    kept: list[str] = []
    if result.priority is not None:
        # Urgency x impact is the fallback for a ticket nothing gave a priority: it does not lower
        # the one it has (an SLA escalation raised it while in triage, the source set it before).
        if result.priority_derived and result.priority.value > state.priority.value:
            kept.append(
                f"priority {state.priority.value} kept: higher than the derived {result.priority.value}"
            )
        else:
            state.priority = result.priority
    if result.sla_policy:
        state.sla.policy = result.sla_policy
    return kept


def _first(*values: Priority | None) -> Priority:
    return next(value for value in values if value is not None)


# What an older event may still tell us: the ticket's content, never its state (status, priority,
# assignee), which the newer events we applied have decided.
_CONTENT_FIELDS = (
    "subject",
    "description",
    "requester",
    "tags",
    "channel",
    "url",
    "created_at",
    "custom_fields",
)


# A stored snapshot holds times as the source said them (ISO text, Unix seconds): read as the contract does.
_SAID_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def fill_gaps(stored: dict[str, Any], older: dict[str, Any]) -> dict[str, Any] | None:
    """The stored snapshot with the content an older event has and it lacks (a ``created``
    delivered after a newer comment: its subject and description), and its creation instant when
    earlier than the one held; None when it adds nothing."""
    filled: dict[str, Any] = {}
    for name in _CONTENT_FIELDS:
        have, offered = stored.get(name), older.get(name)
        if offered in (None, "", [], {}):
            continue
        if name == "created_at" and have not in (None, ""):
            # Not what we hold but the earliest stated: the ticket existed at either instant.
            if _SAID_TIME.validate_python(offered) < _SAID_TIME.validate_python(have):
                filled[name] = offered
        elif isinstance(have, dict) and isinstance(offered, dict):
            combined = {**offered, **have}  # what we hold wins, key by key
            if combined != have:
                filled[name] = combined
        elif have in (None, "", [], {}) and name not in stored:
            # Absent, the field was never said; said empty, it was cleared (the last label removed,
            # see shared.events._SAID_AT_DEFAULT), after what the older event says.
            filled[name] = offered
    return {**stored, **filled} if filled else None
