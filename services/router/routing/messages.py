"""What a batch's decisions turn into: routing events, their decision rows and outbox messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.router.models import RoutingDecision
from services.router.writeback.queue import WritebackQueue
from shared.db.outbox import PendingMessage, pending_message
from shared.events import EventType, OutgoingRoutingEvent, RoutingPayload, outgoing_routing_event

OUTBOX_OWNER = "router"

# Routing events built per slice while the batch's writes are in flight: a slice takes about a
# millisecond, so a statement that finished waits no longer than that for its next turn.
BUILD_SLICE = 64

# A decision's routing event before it is built: kind, payload, the id of the ticket event that
# caused it (as text) and the ticket's id in its source (for write-back).
Emitted = tuple[EventType, RoutingPayload, str, str]


def decision_values(
    kind: EventType, event_id: str, payload: RoutingPayload, at: datetime, caused_by: str | None = None
) -> dict[str, Any]:
    """``caused_by``: ``str(payload.caused_by)`` when the caller has it already."""
    return {
        "event_id": event_id,
        "caused_by": str(payload.caused_by) if caused_by is None else caused_by,
        "ticket_key": payload.state.ticket_key,
        "kind": kind.value,
        "team": payload.state.team,
        "previous_team": payload.previous_team,
        "status": payload.state.status.value,
        "priority": payload.state.priority.value,
        "rule": payload.rule,
        "ruleset_version": payload.ruleset_version,
        "reasons": payload.reasons,
        "decided_at": at,
    }


def decision_row(kind: EventType, event_id: str, payload: RoutingPayload, at: datetime) -> RoutingDecision:
    return RoutingDecision(**decision_values(kind, event_id, payload, at))


class RoutingMessages:
    """The batch's routing events as decision rows and outbox messages, in the order emitted, and
    queued for write-back when a queue is given.

    ``build`` makes the events and their decision rows; ``serialize`` turns the events into outbox
    messages, a step of its own so that it can run while the decision rows are being inserted.
    """

    def __init__(self, topic: str, now: datetime, writeback: WritebackQueue | None) -> None:
        self.topic = topic
        self.now = now
        self.writeback = writeback
        self.decisions: list[dict[str, Any]] = []
        self.events: list[OutgoingRoutingEvent] = []
        self.outbox: list[PendingMessage] = []

    def build(self, emitted: Sequence[Emitted]) -> None:
        now, writeback = self.now, self.writeback
        for kind, payload, caused_by, external_id in emitted:
            out = outgoing_routing_event(kind, payload, now, caused_by)
            self.decisions.append(decision_values(kind, str(out.event_id), payload, now, caused_by))
            self.events.append(out)
            if writeback is not None:
                writeback.add(kind, out, payload, external_id)

    def serialize(self, events: Sequence[OutgoingRoutingEvent]) -> None:
        self.outbox += [pending_message(OUTBOX_OWNER, self.topic, out) for out in events]
