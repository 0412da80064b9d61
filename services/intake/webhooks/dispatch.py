"""Entry points: pick the adapter for a source, and wrap adapted events in envelopes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.events import EventEnvelope, derived_event_id, ticket_event, utc_now

from . import freshdesk, generic, github, intercom, jira, native, zammad, zendesk
from .models import AdaptedEvent, AdapterName, SourceConfig, WebhookRequest

Adapter = Callable[[SourceConfig, WebhookRequest, datetime], list[AdaptedEvent]]

ADAPTERS: dict[AdapterName, Adapter] = {
    "zendesk": zendesk.adapt,
    "jira": jira.adapt,
    "github": github.adapt,
    "freshdesk": freshdesk.adapt,
    "intercom": intercom.adapt,
    "zammad": zammad.adapt,
    "generic": generic.adapt,
    "native": native.adapt,
}


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime | None = None) -> list[AdaptedEvent]:
    """Normalise one verified webhook into ticket events (usually exactly one).

    Raises :class:`MalformedBodyError` (400), :class:`UnmappableError` (422) or
    :class:`IgnoredEvent` (202, publish nothing). ``now`` is the fallback ``occurred_at`` for payloads
    that carry no time.
    """
    return ADAPTERS[config.adapter](config, request, now or utc_now())


def to_envelopes(config: SourceConfig, delivery: str, events: list[AdaptedEvent]) -> list[EventEnvelope]:
    """Envelopes whose ids derive from the delivery id, so a redelivery republishes the same ids and
    consumers' idempotency on ``event_id`` absorbs it; an event with an ``identity`` derives it from
    that instead, so another delivery reporting the same change is absorbed too."""
    return [
        ticket_event(
            event.type,
            config.name,
            event.snapshot,
            event.occurred_at,
            # "change" keeps these ids apart from any delivery's (a delivery id "change" would
            # otherwise give index ids the same inputs).
            event_id=derived_event_id(config.name, "change", event.identity)
            if event.identity is not None
            else derived_event_id(config.name, delivery, str(index)),
        )
        for index, event in enumerate(events)
    ]
