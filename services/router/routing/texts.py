"""Which ticket texts a batch will route, so their text work (language, models, urgency) is done
for the batch at once, and as much of it as possible while the batch's reads are in flight."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from services.router.routing.lifecycle import PreparesBatch
from shared.events import EventEnvelope, EventType
from shared.overlap import IdleWork, in_slices, work_while

# Texts per slice of the early text work. Between slices the batch's reads take their next
# round trip: a slice is a few milliseconds, so the reads barely wait, and slices this big keep
# most of the batching's gain (one language walk and one matrix product per slice).
EARLY_SLICE = 64

# Texts (and new tickets' rule evaluations) per slice of the next batch's work, done as idle work
# in this batch's waits once it has committed (its publish and outbox delete: shared.overlap's
# wide waits). A slice delays the reply whose wait it fills: until the COMMIT reaches the server
# the batch's ticket rows are locked, so its reads, writes and commit (which may flush first) take
# idle slices of EARLY_SLICE. After it only this batch waits, and bigger calls cost less: ~58 µs a
# text in calls of 64, ~50 in calls of 256 (one language walk, matrix product and urgency scan per
# call), ~13 ms a slice. The look-ahead starts only for a full batch (the consumer loop's).
IDLE_SLICE = 256

T = TypeVar("T")


class _Routed(Protocol):
    @property
    def team(self) -> str | None: ...

    @property
    def snapshot(self) -> dict[str, Any]: ...


def texts_of_created(events: Sequence[EventEnvelope]) -> list[tuple[str, str]]:
    """(subject, description) of the batch's ``ticket.created`` events: known before any read,
    and nearly always routed (a ticket is created once; an update may be for a ticket that has a
    team already, whose text would be worked on for nothing)."""
    return [
        (str(e.payload.get("subject", "")), str(e.payload.get("description", "")))
        for e in events
        if e.type == EventType.TICKET_CREATED
    ]


def texts_to_route(events: Sequence[EventEnvelope], tickets: Mapping[str, _Routed]) -> list[tuple[str, str]]:
    """(subject, description) of the events that will probably be routed: new tickets and tickets
    waiting in triage, merged as the handler will merge them. A guess that turns out wrong costs
    only time: the route function computes what was not prepared."""
    merged: dict[str, dict[str, Any]] = {}
    texts: list[tuple[str, str]] = []
    for envelope in events:
        row = tickets.get(envelope.ticket_key)
        if row is not None and row.team is not None:
            continue
        base = merged.get(envelope.ticket_key, row.snapshot if row is not None else {})
        snapshot = merged[envelope.ticket_key] = {**base, **envelope.payload}
        texts.append((str(snapshot.get("subject", "")), str(snapshot.get("description", ""))))
    return texts


async def prepare_while(
    route: PreparesBatch, texts: Sequence[tuple[str, str]], reads: Awaitable[T], idle: IdleWork | None = None
) -> T:
    """Run ``reads`` (the batch's database reads) and meanwhile prepare ``texts`` in slices,
    yielding to the event loop between slices, until the reads are done; return what they returned.

    The text work is CPU and the reads mostly wait for the database, so together they take about
    as long as the longer of the two. The texts not prepared by then are the caller's to prepare,
    with the rest of the batch's (``texts_to_route``), in one call: a slice of 64 costs ~10 % more
    per text than a batch of hundreds. If the text work fails (or the batch is cancelled), the
    reads are cancelled and awaited before the error goes on: the session is theirs until then.
    Once these texts are prepared, ``idle`` work (the next batch's) fills the rest of the wait.
    """
    return await work_while(in_slices(route.prepare, texts, EARLY_SLICE), reads, until_done=True, idle=idle)
