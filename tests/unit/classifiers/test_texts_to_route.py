"""Which texts a batch prepares (new tickets and tickets in triage, merged as the handler merges),
and the early text work running beside the batch's reads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.router.models import RouterTicket
from services.router.routing.texts import EARLY_SLICE, prepare_while, texts_of_created, texts_to_route
from shared.events import EventType, TicketSnapshot, ticket_event


def event(external_id: str, kind: EventType = EventType.TICKET_CREATED, **fields: str):
    return ticket_event(kind, "api", TicketSnapshot(external_id=external_id, **fields))


def stored(key: str, team: str | None, subject: str, description: str) -> RouterTicket:
    return RouterTicket(ticket_key=key, team=team, snapshot={"subject": subject, "description": description})


def test_new_and_triaged_tickets_are_prepared_routed_ones_are_not():
    new = event("1", subject="VPN down", description="since 9:00")
    triaged = event("2", EventType.TICKET_UPDATED, description="more detail")
    routed = event("3", EventType.TICKET_UPDATED, subject="printer jam")
    tickets = {
        triaged.ticket_key: stored(triaged.ticket_key, None, "Laptop", "black screen"),
        routed.ticket_key: stored(routed.ticket_key, "hardware", "Printer", "jam"),
    }
    assert texts_to_route([new, triaged, routed], tickets) == [
        ("VPN down", "since 9:00"),
        ("Laptop", "more detail"),  # the stored subject, the event's description
    ]


def test_a_second_event_of_a_new_ticket_merges_onto_the_first():
    first = event("7", subject="Mail", description="cannot send")
    second = event("7", EventType.TICKET_UPDATED, description="cannot send or receive")
    assert texts_to_route([first, second], {}) == [
        ("Mail", "cannot send"),
        ("Mail", "cannot send or receive"),
    ]


def test_before_any_read_only_created_events_are_guessed():
    created = event("1", subject="VPN down", description="since 9:00")
    update = event("2", EventType.TICKET_UPDATED, subject="printer jam", description="again")
    assert texts_of_created([created, update]) == [("VPN down", "since 9:00")]


class RecordingRoute:
    def __init__(self, log: list[str], fail_at: int | None = None) -> None:
        self.log = log
        self.fail_at = fail_at
        self.prepared: list[tuple[str, str]] = []

    def prepare(self, texts: Sequence[tuple[str, str]]) -> None:
        if self.fail_at is not None and len(self.prepared) >= self.fail_at:
            raise RuntimeError("text work failed")
        self.prepared.extend(texts)
        self.log.append(f"prepare {len(texts)}")


def texts(n: int) -> list[tuple[str, str]]:
    return [(f"subject {i}", f"description {i}") for i in range(n)]


async def test_the_reads_advance_between_slices_of_the_text_work():
    log: list[str] = []

    async def reads() -> str:
        for step in range(3):  # three round trips
            log.append(f"read {step}")
            await asyncio.sleep(0)
        return "rows"

    route = RecordingRoute(log)
    n = 5 * EARLY_SLICE + 1
    assert await prepare_while(route, texts(n), reads()) == "rows"
    # The first statement goes out before any text work, and each slice lets the reads go on.
    # Once they are done no slice follows: the caller prepares the rest in one call.
    assert log == [
        "read 0",
        f"prepare {EARLY_SLICE}",
        "read 1",
        f"prepare {EARLY_SLICE}",
        "read 2",
        f"prepare {EARLY_SLICE}",
    ]
    assert route.prepared == texts(3 * EARLY_SLICE)


async def test_text_work_goes_on_while_the_reads_wait():
    log: list[str] = []
    release = asyncio.Event()

    async def reads() -> str:
        await release.wait()
        log.append("reads finished")
        return "rows"

    class ReleasingRoute(RecordingRoute):
        def prepare(self, texts: Sequence[tuple[str, str]]) -> None:
            super().prepare(texts)
            if len(self.prepared) == 2 * EARLY_SLICE:
                release.set()  # the database answers during the second slice

    route = ReleasingRoute(log)
    assert await prepare_while(route, texts(4 * EARLY_SLICE), reads()) == "rows"
    assert log == [f"prepare {EARLY_SLICE}", f"prepare {EARLY_SLICE}", "reads finished"]


async def test_failed_text_work_cancels_the_reads_and_waits_for_them():
    log: list[str] = []

    async def reads() -> str:
        try:
            await asyncio.sleep(60)
            return "rows"
        finally:
            log.append("reads finished")

    with pytest.raises(RuntimeError, match="text work failed"):
        await prepare_while(RecordingRoute(log, fail_at=EARLY_SLICE), texts(2 * EARLY_SLICE), reads())
    # The reads (the session's user) were done before the error reached the handler.
    assert log == [f"prepare {EARLY_SLICE}", "reads finished"]


async def test_a_read_error_reaches_the_caller_after_the_text_work():
    async def reads() -> str:
        raise ConnectionError("database gone")

    route = RecordingRoute([])
    with pytest.raises(ConnectionError, match="database gone"):
        await prepare_while(route, texts(EARLY_SLICE + 1), reads())
