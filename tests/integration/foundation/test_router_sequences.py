"""Event sequences through the router's batch handler that once left a wrong state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import RouterTicket, RoutingDecision
from services.router.routing.handler import HandlerOptions, RoutingHandler
from services.router.routing.lifecycle import RouteResult
from shared.events import EventEnvelope, EventType, Priority, TicketSnapshot, assume_utc, ticket_event
from shared.kafka.consumer import ConsumedEvent
from tests.integration.foundation.test_router_batches import RecordingProducer

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


def route(snapshot: TicketSnapshot, source: str, **_: Any) -> RouteResult:
    if "outage" in snapshot.subject.lower():  # a rule that raises the priority
        return RouteResult(
            team="ops", priority=Priority.P1, rule="outage", ruleset_version=1, reasons=["outage"]
        )
    return RouteResult(team="access", rule="any", ruleset_version=1, reasons=["any"])


async def handle(sessions: Sessions, *batches: list[EventEnvelope]) -> None:
    handler = RoutingHandler(sessions, RecordingProducer(), "routing", lambda: route, lambda: NOW)
    offset = 0
    for batch in batches:
        consumed = []
        for sent in batch:
            envelope, ticket = EventEnvelope.decode(sent.to_bytes())
            consumed.append(ConsumedEvent(envelope, "tickets", 0, offset, ticket))
            offset += 1
        await handler(consumed)


def said(kind: EventType, ext: str, **fields: Any) -> EventEnvelope:
    return ticket_event(kind, "api", TicketSnapshot(external_id=ext, **fields), NOW)


async def test_a_source_repeating_its_priority_does_not_undo_the_routers(sessions: Sessions) -> None:
    """The stored snapshot merged with a comment still says P3: that is not the source setting P3."""
    ext = uuid.uuid4().hex
    await handle(
        sessions,
        [said(EventType.TICKET_CREATED, ext, subject="Outage", priority=Priority.P3)],
        [said(EventType.TICKET_COMMENTED, ext, comment={"body": "+1", "from_agent": False})],
        [said(EventType.TICKET_UPDATED, ext, priority=Priority.P3)],  # full-snapshot sources repeat it
    )
    async with sessions() as session:
        row = await session.get(RouterTicket, f"api:{ext}")
        assert row is not None and row.priority == Priority.P1.value
        decisions = (
            await session.scalars(select(RoutingDecision).where(RoutingDecision.ticket_key == f"api:{ext}"))
        ).all()
    assert [d.kind for d in decisions] == [EventType.TICKET_ROUTED.value]
    # A change the source makes is still applied.
    await handle(sessions, [said(EventType.TICKET_UPDATED, ext, priority=Priority.P2)])
    async with sessions() as session:
        row = await session.get(RouterTicket, f"api:{ext}")
        assert row is not None and row.priority == Priority.P2.value


async def test_a_time_without_a_zone_is_utc_and_later_events_still_apply(sessions: Sessions) -> None:
    """A native webhook's naive updated_at, then an aware one: comparing them raised TypeError."""
    ext = uuid.uuid4().hex
    naive = datetime(2026, 6, 1, 9, 0)
    await handle(
        sessions,
        [said(EventType.TICKET_CREATED, ext, subject="vpn", updated_at=naive)],
        [
            said(
                EventType.TICKET_UPDATED,
                ext,
                priority=Priority.P2,
                updated_at=naive.replace(tzinfo=UTC) + timedelta(minutes=30),
            )
        ],
    )
    async with sessions() as session:
        row = await session.get(RouterTicket, f"api:{ext}")
    assert row is not None and row.priority == Priority.P2.value
    assert row.snapshot["updated_at"].endswith(("+00:00", "Z"))


async def test_a_created_delivered_after_a_newer_comment_still_gives_its_content(sessions: Sessions) -> None:
    """The comment made the ticket (no subject: triage); the older created event was then dropped
    as stale, with the subject the rules needed."""
    ext = uuid.uuid4().hex
    t0 = NOW - timedelta(hours=2)

    def triage_unless_vpn(snapshot: TicketSnapshot, source: str, **_: Any) -> RouteResult:
        if "vpn" in snapshot.subject.lower():
            return RouteResult(team="access", rule="vpn", ruleset_version=1, reasons=["vpn"])
        return RouteResult(team=None, reasons=["no rule"])

    handler = RoutingHandler(sessions, RecordingProducer(), "routing", lambda: triage_unless_vpn, lambda: NOW)
    comment = said(
        EventType.TICKET_COMMENTED,
        ext,
        updated_at=t0 + timedelta(minutes=5),
        comment={"body": "any news?", "from_agent": False},
    )
    created = said(
        EventType.TICKET_CREATED, ext, subject="VPN broken", status="open", updated_at=t0, created_at=t0
    )
    for offset, sent in enumerate([comment, created]):
        envelope, ticket = EventEnvelope.decode(sent.to_bytes())
        await handler([ConsumedEvent(envelope, "tickets", 0, offset, ticket)])
    async with sessions() as session:
        row = await session.get(RouterTicket, f"api:{ext}")
    assert row is not None and row.team == "access" and row.snapshot["subject"] == "VPN broken"
    assert row.snapshot["updated_at"] == comment.payload["updated_at"]  # the newer state stays


async def test_an_updated_at_in_unix_seconds_does_not_break_the_tickets_later_events(
    sessions: Sessions,
) -> None:
    """The contract reads Unix seconds as a time; stored as said, the next event of the ticket read
    it back with ``fromisoformat`` and failed (TypeError), that event and every later one."""
    ext = uuid.uuid4().hex
    created = said(EventType.TICKET_CREATED, ext, subject="vpn")
    created.payload["updated_at"] = int((NOW - timedelta(hours=1)).timestamp())
    text = said(EventType.TICKET_CREATED, f"{ext}-text", subject="vpn")
    text.payload["updated_at"] = str(int((NOW - timedelta(hours=1)).timestamp()))
    await handle(sessions, [created, text])
    newer = [
        said(EventType.TICKET_UPDATED, e, priority=Priority.P2, updated_at=NOW) for e in (ext, f"{ext}-text")
    ]
    older = said(EventType.TICKET_UPDATED, ext, priority=Priority.P1)
    older.payload["updated_at"] = int((NOW - timedelta(hours=2)).timestamp())
    await handle(sessions, newer, [older])
    async with sessions() as session:
        for key in (f"api:{ext}", f"api:{ext}-text"):
            row = await session.get(RouterTicket, key)
            assert row is not None and row.priority == Priority.P2.value  # the older P1 was stale


async def test_an_update_that_changes_the_helpdesk_group_moves_the_ticket_and_our_echo_does_not(
    sessions: Sessions,
) -> None:
    """A helpdesk that sends every change as ``ticket.updated`` (a Zendesk trigger, a generic
    source): an agent's move came as an update and was ignored, while the same move sent as
    ``ticket.reassigned_externally`` stood. The group the source said before tells them apart
    from a full snapshot repeating the group it had before our write-back landed."""
    ext = uuid.uuid4().hex
    key = f"api:{ext}"
    groups = {"G-access": "access", "G-billing": "billing"}
    handler = RoutingHandler(
        sessions,
        RecordingProducer(),
        "routing",
        lambda: route,
        lambda: NOW,
        HandlerOptions(team_of_group=lambda source, group: groups.get(group)),
    )
    offset = 0

    async def update(group: str, kind: EventType = EventType.TICKET_UPDATED) -> tuple[str | None, list[str]]:
        nonlocal offset
        sent = said(kind, ext, subject="VPN down", status="open", external_assignee_group=group)
        envelope, ticket = EventEnvelope.decode(sent.to_bytes())
        await handler([ConsumedEvent(envelope, "tickets", 0, offset, ticket)])
        offset += 1
        async with sessions() as session:
            row = await session.get(RouterTicket, key)
            kinds = (
                await session.scalars(
                    select(RoutingDecision.kind)
                    .where(RoutingDecision.ticket_key == key)
                    .order_by(RoutingDecision.id)
                )
            ).all()
        assert row is not None
        return row.team, list(kinds)

    routed = [EventType.TICKET_ROUTED.value]
    # Created in the helpdesk's general group; the rules route it to access.
    assert await update("G-general", EventType.TICKET_CREATED) == ("access", routed)
    # A full snapshot before our write-back landed still says the old group: no move.
    assert await update("G-general") == ("access", routed)
    # Our write-back's echo: the group standing for the team we chose. Nothing moves.
    assert await update("G-access") == ("access", routed)
    # An agent moves it to billing's group, reported as an update: the move stands.
    moved = [*routed, EventType.TICKET_STATE_CHANGED.value]
    assert await update("G-billing") == ("billing", moved)
    # The next full snapshot repeats that group: no news.
    assert await update("G-billing") == ("billing", moved)


async def test_a_created_delivered_after_a_reply_gives_the_ticket_its_creation(sessions: Sessions) -> None:
    """The reply made the ticket, created when it was heard of (the reply says no creation); the
    late created event's creation instant filled the snapshot and not the ticket's ``created_at``,
    so its age and SLA clock ran from the reply."""
    ext = uuid.uuid4().hex
    t0 = NOW - timedelta(hours=2)
    reply = said(
        EventType.TICKET_COMMENTED,
        ext,
        updated_at=t0 + timedelta(minutes=5),
        comment={"body": "any news?", "from_agent": False},
    )
    created = said(EventType.TICKET_CREATED, ext, subject="VPN", status="open", updated_at=t0, created_at=t0)
    await handle(sessions, [reply], [created])
    async with sessions() as session:
        row = await session.get(RouterTicket, f"api:{ext}")
        assert row is not None
        decisions = (
            await session.scalars(
                select(RoutingDecision)
                .where(RoutingDecision.ticket_key == f"api:{ext}")
                .order_by(RoutingDecision.id)
            )
        ).all()
    assert assume_utc(row.created_at) == t0
    assert decisions[-1].reasons == [f"source says the ticket was created at {t0.isoformat()}"]
