"""Shared test helpers: event builders and exposition parsing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.backlog import BacklogCollector, BacklogState
from shared.events import EventEnvelope, EventType, RoutingPayload, SlaState, TicketState, routing_event

BASE = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def make_state(
    key: str,
    created: float,
    *,
    team: str | None = None,
    priority: str = "P3",
    status: str = "open",
    category: str | None = "billing",
    resolved: float | None = None,
    routed: float | None = None,
    fr_due: float | None = None,
    res_due: float | None = None,
    res_warn: float | None = None,
    responded: float | None = None,
    paused: bool = False,
    source: str = "zendesk",
) -> TicketState:
    return TicketState(
        ticket_key=key,
        source=source,
        status=status,
        team=team,
        priority=priority,
        category=category,
        created_at=at(created),
        resolved_at=None if resolved is None else at(resolved),
        routed_at=None if routed is None else at(routed),
        sla=SlaState(
            first_response_due=None if fr_due is None else at(fr_due),
            resolution_due=None if res_due is None else at(res_due),
            resolution_warning_at=None if res_warn is None else at(res_warn),
            first_responded_at=None if responded is None else at(responded),
            paused=paused,
        ),
    )


def envelope(
    state: TicketState,
    now: float,
    event_type: EventType = EventType.TICKET_STATE_CHANGED,
    history_import: bool = False,
) -> EventEnvelope:
    payload = RoutingPayload(state=state, history_import=history_import)
    return routing_event(event_type, payload, at(now), caused_by=uuid.uuid4())


def scrape(state: BacklogState) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition -> {(sample name, sorted labels): value}, parsed back from the text format."""
    registry = CollectorRegistry()
    registry.register(BacklogCollector(state, clock=None))
    text = generate_latest(registry).decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
