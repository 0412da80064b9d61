"""Through the router's batch handler: signals reach the ticket state, and a reassignment in the
source system is stored as a labelled example in the same transaction."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.router.classifiers import service
from services.router.classifiers.schemas import LabelKind
from services.router.models import ClassifierFeedback, RouterTicket
from services.router.routing.handler import RoutingHandler
from services.router.routing.policy import RoutingPolicy
from services.router.rules import RuleSet, compile_ruleset
from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings
from tests.unit.classifiers.helpers import SURE_NETWORK, view

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


async def test_reassignment_becomes_feedback_and_signals_reach_the_state(sessions, settings_kwargs):
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    policy = RoutingPolicy(compile_ruleset(RuleSet(default_team="general", version=1)), 1, lambda: NOW)
    classifiers = view(LabelKind.TEAM)
    route = functools.partial(policy.route, classifiers=classifiers)
    try:
        handler = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: NOW
        )
        external_id = uuid.uuid4().hex
        created = ticket_event(
            EventType.TICKET_CREATED,
            "api",
            TicketSnapshot(
                external_id=external_id, subject="VPN down", description=SURE_NETWORK, updated_at=NOW
            ),
        )
        moved = ticket_event(
            EventType.TICKET_REASSIGNED_EXTERNALLY,
            "api",
            TicketSnapshot(
                external_id=external_id,
                external_assignee_group="security",
                updated_at=NOW + timedelta(minutes=5),
            ),
        )
        moved_again = ticket_event(  # an update that changes nothing about the team: no feedback
            EventType.TICKET_UPDATED,
            "api",
            TicketSnapshot(external_id=external_id, status="pending", updated_at=NOW + timedelta(minutes=6)),
        )
        await handler([ConsumedEvent(created, "tickets", 0, 0)])
        async with sessions() as session:
            row = await session.get(RouterTicket, created.ticket_key)
            assert row is not None and row.team == "network" and row.language == "en"
        await handler([ConsumedEvent(moved, "tickets", 0, 1), ConsumedEvent(moved_again, "tickets", 0, 2)])
        await handler([ConsumedEvent(moved, "tickets", 0, 1)])  # redelivered: no second example
        async with sessions() as session:
            rows = (
                await session.scalars(
                    select(ClassifierFeedback).where(ClassifierFeedback.ticket_key == created.ticket_key)
                )
            ).all()
            examples = await service.feedback_examples(session)
        assert [(r.label, r.previous_label) for r in rows] == [("security", "network")]
        assert rows[0].text.startswith("VPN down\n") and SURE_NETWORK in rows[0].text
        assert created.ticket_key in {e.ticket_key for e in examples}
    finally:
        await producer.stop()
