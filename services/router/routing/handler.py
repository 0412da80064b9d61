"""The router's batch handler: ticket events in, decisions stored and routing events out.

Exactly-once effect on top of at-least-once delivery:

1. in ONE database transaction per batch: skip event ids already processed, apply
   :func:`decide`, write ticket state, decision rows, outbox rows and the processed ids;
2. after the commit, publish the outbox rows (acks=all) and delete them;
3. return, so the consumer loop commits the Kafka offsets.

A crash after 1 leaves outbox rows that the next start publishes before anything else; a crash
before 1 leaves nothing. Re-published events carry the same ids and ticket revisions, so
consumers ignore the repeat.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Counter
from pydantic import TypeAdapter
from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.assignment import LoadConfig
from services.router.classifiers.service import feedback_row, is_team_correction
from services.router.load.book import LoadBook
from services.router.load.store import persist, prefetch, take_write_lock
from services.router.models import RouterTicket, RoutingDecision
from services.router.routing.lifecycle import (
    EvaluatesAhead,
    PreparesBatch,
    RouteFn,
    decide,
    fill_gaps,
    is_first_response,
)
from services.router.routing.messages import BUILD_SLICE, OUTBOX_OWNER, Emitted, RoutingMessages
from services.router.routing.texts import (
    EARLY_SLICE,
    IDLE_SLICE,
    prepare_while,
    texts_of_created,
    texts_to_route,
)
from services.router.slas.tracking import SlaConfig, SlaTracker
from services.router.writeback.queue import WritebackQueue
from shared.db.base import Base
from shared.db.bulk import among_parameter, insert_rows
from shared.db.dialect import is_postgres
from shared.db.outbox import OutboxWriter, PendingMessage, insert_outbox, unpublished_of
from shared.db.processed import claim_events
from shared.events import (
    TICKET_EVENT_TYPES,
    EventEnvelope,
    EventType,
    Priority,
    SlaState,
    TicketSnapshot,
    TicketState,
    TicketStatus,
    UtcDatetime,
    utc_now,
)
from shared.kafka.consumer import ConsumedEvent, PoisonMessage
from shared.overlap import IdleWork, Sliced, during, in_slices, work_beside

log = logging.getLogger(__name__)

CONSUMER_NAME = "router"

DECISIONS = Counter("router_decisions_total", "Routing events published, by kind", ["kind"])
DUPLICATES = Counter("router_duplicate_events_total", "Ticket events skipped as already processed")
STALE = Counter("router_stale_events_total", "Ticket events older than the state we hold")


@dataclass(slots=True)
class NewTicket:
    """A ticket first seen in this batch, with RouterTicket's columns (a test keeps them equal).

    Inserted with the batch's other new tickets in one Core statement, so a plain object will do:
    a transient ORM instance cost more in attribute instrumentation than in the insert itself.
    """

    ticket_key: str
    source: str
    external_id: str
    revision: int = 0
    status: str = ""
    team: str | None = None
    priority: str = ""
    category: str | None = None
    category_confidence: float | None = None
    language: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    routed_at: datetime | None = None
    resolved_at: datetime | None = None
    sla: dict[str, Any] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)
    sla_clock: dict[str, Any] | None = None
    sla_next_due_at: datetime | None = None
    pruned_at: datetime | None = None


TicketRow = RouterTicket | NewTicket


def next_timer(
    stored: datetime | None,
    computed: datetime | None,
    now: datetime,
    behind: bool = False,
    paused: bool = False,
) -> datetime | None:
    """When the scanner should look at the ticket next. The scanner recomputes before it fires
    anything, so a recheck after a policy or calendar edit (slas/recheck.py) that this router's
    configuration does not show yet is kept: a ticket already due stays due, and one whose clock
    a newer configuration computed (``behind``) becomes due now. That holds for a clock this
    router's configuration pauses (``paused``, ``computed`` None) as well: a newer one may not pause
    it, and the scanner, once it recomputes, clears the timer if it does. A stopped clock (the
    ticket resolved, ``computed`` None) has no deadline under any configuration."""
    if computed is None and not paused:
        return None
    if behind:
        return now
    if stored is not None and stored <= now:
        return stored if computed is None else min(stored, computed)
    return computed


_SAID_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)


def said_updated_at(snapshot: dict[str, Any]) -> datetime | None:
    """The ``updated_at`` of a stored snapshot, which holds it as the source's event said it: any
    time the contract reads (Unix seconds too), not only the ISO text ``fromisoformat`` reads."""
    value = snapshot.get("updated_at")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)  # what intake writes: the fast path
        except ValueError:
            pass
    return _SAID_TIME.validate_python(value)


def state_from_row(row: TicketRow) -> TicketState:
    return TicketState(
        ticket_key=row.ticket_key,
        source=row.source,
        revision=row.revision,
        status=TicketStatus(row.status),
        team=row.team,
        priority=Priority(row.priority),
        category=row.category,
        category_confidence=row.category_confidence,
        language=row.language,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        routed_at=row.routed_at,
        sla=SlaState.model_validate(row.sla or {}),
    )


RECOMPUTED_SLA_FIELDS: set[str] = {
    "first_response_warning_at",
    "resolution_warning_at",
    "first_response_breached",
    "resolution_breached",
}


def apply_state(row: TicketRow, state: TicketState, snapshot: dict[str, Any], now: datetime) -> None:
    row.revision = state.revision
    row.status = state.status.value
    row.team = state.team
    row.priority = state.priority.value
    row.category = state.category
    row.category_confidence = state.category_confidence
    row.language = state.language
    row.created_at = state.created_at
    row.routed_at = state.routed_at
    row.resolved_at = state.resolved_at
    # The warning instants and verdicts are recomputed for every emitted state; leaving them out of the row
    # keeps it readable by a router of the previous release (its SlaState forbids unknown
    # fields) during a rolling deploy or a rollback.
    row.sla = state.sla.model_dump(mode="json", exclude=RECOMPUTED_SLA_FIELDS)
    row.snapshot = snapshot
    row.updated_at = now
    if row.pruned_at is not None:  # a stub that gets an event is a live ticket again
        row.pruned_at = None


def _batch_key(batch: Sequence[ConsumedEvent]) -> tuple[str, int, int]:
    first = batch[0]
    return first.topic, first.partition, first.offset


def _table(model: type[Base]) -> Table:
    # Core statements on the tables skip the ORM's per-row bookkeeping.
    return cast(Table, model.__table__)


_TICKET_COLUMNS = tuple(column.key for column in _table(RouterTicket).columns)


@functools.cache
def _tickets_query(postgres: bool, lock: bool) -> Select[RouterTicket]:
    """A batch's tickets by key (``keys``), in key order and locked with ``lock``. Built once: a
    statement and its cache key built for every batch cost more CPU than running it."""
    query = select(RouterTicket).where(among_parameter(RouterTicket.ticket_key, "keys", postgres))
    return query.order_by(RouterTicket.ticket_key).with_for_update() if lock else query


def ticket_values(row: NewTicket) -> dict[str, Any]:
    """A new ticket as Core insert values: every column, as the decision left it."""
    return {key: getattr(row, key) for key in _TICKET_COLUMNS}


@dataclass(frozen=True)
class HandlerOptions:
    """Optional stages; each one's state changes share the batch's single transaction.

    ``load``: keep ``team_load`` counters and pass the batch's loads to the route function as
    ``loads=`` (it must accept it); ``sla``: the live SLA configuration; ``writeback``: queue
    outbound notifications; ``team_of_group``: which of our teams a helpdesk group a source
    reports stands for (write-back connectors' ``groups``, read backwards), None when none does.
    """

    load: LoadConfig | None = None
    overflow_team: str | None = None
    sla: Callable[[], SlaConfig] | None = None
    writeback: bool = False
    team_of_group: Callable[[str, str], str | None] | None = None


def as_our_team(
    group: str | None, source: str, team_of_group: Callable[[str, str], str | None] | None
) -> str | None:
    """A helpdesk group named as the team it stands for, if any; else as the helpdesk names it."""
    if team_of_group is None or not group:
        return group
    return team_of_group(source, group) or group


def in_our_teams(
    snapshot: TicketSnapshot, source: str, team_of_group: Callable[[str, str], str | None] | None
) -> TicketSnapshot:
    """``snapshot`` with the helpdesk group it reports named as the team it stands for, if any."""
    group = snapshot.external_assignee_group
    team = as_our_team(group, source, team_of_group)
    return snapshot if team == group else snapshot.model_copy(update={"external_assignee_group": team})


def position(state: TicketState | None) -> tuple[str | None, TicketStatus, Priority] | None:
    return None if state is None else (state.team, state.status, state.priority)


def router_outbox(sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer) -> OutboxWriter:
    """The router's side of the outbox, for its batch handler and its escalation scanner to share.

    Shared, a rebalance or a failed publish marks it dirty for both, so the leftovers go out
    before either one's next events: after the batch handler's, or at the scanner's next tick
    when no ticket event comes (a dead router's scanner rows answer no event that would be
    redelivered). Dirty at first: a previous process may have died with unpublished rows.
    """
    return OutboxWriter(sessions, producer, OUTBOX_OWNER, dirty=True)


class RoutingHandler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        routing_topic: str,
        route_provider: Callable[[], RouteFn],
        clock: Callable[[], datetime] = utc_now,
        options: HandlerOptions = HandlerOptions(),
        outbox: OutboxWriter | None = None,
    ) -> None:
        self.sessions = sessions
        self.producer = producer
        self.routing_topic = routing_topic
        self.route_provider = route_provider
        self.clock = clock
        self.options = options
        # ``outbox``: the writer the escalation scanner uses too (see ``router_outbox``); by default
        # one of its own, dirty until checked: a previous process may have died with unpublished rows.
        self.outbox = outbox or router_outbox(sessions, producer)
        # The next batch's text work, done while this batch waits (see ``prepare_next``), and the
        # route functions bound for batches seen ahead (the next one's, at most two).
        self.idle = IdleWork()
        self._routes_ahead: dict[tuple[str, int, int], RouteFn] = {}
        # Not on SQLite: its statements run on aiosqlite's thread, which needs the GIL that text
        # work holds, so there are no waits to fill.
        self.look_ahead = sessions.kw["bind"].dialect.name == "postgresql"

    def prepare_next(self, batch: list[ConsumedEvent]) -> None:
        """The consumer loop's look-ahead: ``batch`` comes after the one about to be handled. Bind
        its route function now and queue its new tickets' text work as idle work, which the
        current batch does while it waits on the database and the broker. The batch is handled
        with that route function (one rule set and classifier view per batch, as ever, bound a
        batch earlier); whatever text work was not done by then it does itself."""
        if not self.look_ahead or not batch:
            return
        route = self.route_provider()
        key = _batch_key(batch)
        self._routes_ahead[key] = route
        if len(self._routes_ahead) > 2:  # the oldest was never handled (dropped at a rebalance)
            del self._routes_ahead[next(iter(self._routes_ahead))]
        if isinstance(route, PreparesBatch):
            texts = texts_of_created([e.envelope for e in batch if e.envelope.type in TICKET_EVENT_TYPES])
            steps: list[Sliced] = [Sliced(route.prepare, texts, EARLY_SLICE, IDLE_SLICE)]
            if isinstance(route, EvaluatesAhead):
                # Then the new tickets' rules: they route these very snapshots (see _process).
                created = [
                    (e.ticket, e.envelope.source)
                    for e in batch
                    if e.envelope.type == EventType.TICKET_CREATED and e.ticket is not None
                ]
                steps.append(Sliced(route.evaluate_ahead, created, EARLY_SLICE, IDLE_SLICE))
            self.idle.replace(key, steps)

    async def __call__(self, batch: list[ConsumedEvent]) -> None:
        # The router consumes the tickets topic only, so any other event in it (a routing event
        # published there by mistake) is one it can never act on. Skipping it would commit past
        # it unseen; as poison the consumer loop dead-letters it with this reason, counted and
        # logged like any rejected message, and routes the batch's other events (it halves the
        # batch down to the one at fault). Checked before any work: those tries cost nothing.
        for event in batch:
            if event.envelope.type not in TICKET_EVENT_TYPES:
                raise PoisonMessage(
                    f"{event.envelope.type.value} is a routing event, not a ticket event: the router "
                    "acts on ticket events only (was it published to the tickets topic by mistake?)"
                )
        await self.outbox.relay_leftovers()
        key = _batch_key(batch) if batch else None
        self.idle.discard(key)  # its text work's turn has come: done below (the rest in one call)
        route = self._routes_ahead.pop(key, None) if key is not None else None
        if route is None:
            route = self.route_provider()
        now = self.clock()
        kinds: list[str] = []
        # A failed publish leaves the rows in the outbox; the retry relays them first.
        await self.outbox.commit_then_publish(
            lambda session: self._process(session, batch, route, now, kinds), self.idle
        )
        for kind in kinds:
            DECISIONS.labels(kind).inc()

    async def on_assign(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """A rebalance: the partitions may come from a router that died between its database
        commit and its publish. Its rows wait in the shared outbox; relay them before handling
        the redelivered events, so the ticket's events keep their order (and, with the writer
        shared, at the escalation scanner's next tick when no event comes). No seek: the group's
        committed offsets are where to resume. Routes bound for batches announced before are
        forgotten: those batches are dropped, and when fetched again they are routed as of then."""
        self.outbox.dirty = True
        self._routes_ahead.clear()
        return {}

    async def _read(
        self, session: AsyncSession, events: Sequence[EventEnvelope], ids: Sequence[str], now: datetime
    ) -> tuple[set[str], dict[str, TicketRow], LoadBook | None, list[PendingMessage]]:
        """The batch's reads: claim its event ids (``ids``, as text), lock and load its tickets,
        then the team loads; and, with SLA clocks, the events of these tickets another router's
        escalation scanner committed and has not published yet."""
        # Claimed in this transaction: a rollback un-claims them, a redelivery finds them taken.
        fresh = await claim_events(session, CONSUMER_NAME, ids, now)
        keys = {e.ticket_key for e in events}
        options = self.options
        locking = options.load is not None or options.sla is not None
        if locking:
            await take_write_lock(session)  # SQLite: read nothing that another writer may change
        postgres = is_postgres(session)
        # Ticket rows first, then team_load: the escalation scanner locks in the same order.
        query = _tickets_query(postgres, lock=locking and postgres)
        rows = await session.scalars(query, {"keys": list(keys)})
        tickets: dict[str, TicketRow] = {row.ticket_key: row for row in rows.all()}
        book = None
        if options.load is not None:
            book = await prefetch(session, options.load, options.overflow_team, at=now)
        ahead: list[PendingMessage] = []
        if options.sla is not None and tickets:
            # The scanner is bound to no partition: another router's may have fired on one of these
            # tickets and not published yet (in flight, or its process died). Published before
            # this batch's events, they keep the ticket's order; its own publish, if it comes,
            # repeats them under the same ids. Read after the locks, in a statement of its own: a
            # statement sees what was committed when it started, and the lock may have been
            # waited for.
            ahead = await unpublished_of(session, OUTBOX_OWNER, list(tickets))
        return fresh, tickets, book, ahead

    async def _process(
        self,
        session: AsyncSession,
        batch: Sequence[ConsumedEvent],
        route: RouteFn,
        now: datetime,
        kinds: list[str],
    ) -> list[PendingMessage]:
        decoded = [(e.envelope, e.ticket) for e in batch]  # ticket events only: see __call__
        events = [envelope for envelope, _ in decoded]
        ids = [str(envelope.event_id) for envelope in events]
        options = self.options
        reads = self._read(session, events, ids, now)
        if isinstance(route, PreparesBatch) and is_postgres(session):
            # The created tickets' text work runs while the reads wait on the database; the rest
            # of it, and what the reads show is still to route (a triaged ticket's update), after.
            fresh, tickets, book, ahead = await prepare_while(
                route, texts_of_created(events), reads, self.idle
            )
        else:
            # Not on SQLite: its statements wait on no other process, they run on aiosqlite's
            # thread, which needs the GIL that the text work holds; there is nothing to overlap.
            fresh, tickets, book, ahead = await reads
        if isinstance(route, PreparesBatch):
            route.prepare(texts_to_route(events, tickets))
        if book is not None:
            route = functools.partial(route, loads=book)  # type: ignore[call-arg]  # load-aware policy
        sla_config = options.sla() if options.sla is not None else None
        created: list[NewTicket] = []
        emitted: list[Emitted] = []
        for (envelope, ticket), event_id in zip(decoded, ids, strict=True):
            if event_id not in fresh:  # applied before, or earlier in this batch
                DUPLICATES.inc()
                continue
            fresh.discard(event_id)
            row = tickets.get(envelope.ticket_key)
            # Merge what the source said now onto what we know; a comment is an event, not state.
            merged = {**(row.snapshot if row is not None else {}), **envelope.payload}
            # A new ticket's snapshot is its payload, validated already when it was decoded.
            snapshot = ticket if row is None and ticket is not None else TicketSnapshot.model_validate(merged)
            snapshot = in_our_teams(snapshot, envelope.source, options.team_of_group)
            merged.pop("comment", None)
            current = state_from_row(row) if row is not None else None
            updated_at = said_updated_at(row.snapshot) if row is not None else None
            said_priority = row.snapshot.get("priority") if row is not None else None
            # The group the source said before, named by the same mapping as the event's: a mapping
            # reloaded in between must not make a repeated group look like a move.
            said_group = None
            if row is not None:
                said = row.snapshot.get("external_assignee_group")
                said_group = as_our_team(said, envelope.source, options.team_of_group)
            tracker = None
            if sla_config is not None:
                stored = row.sla_clock if row is not None else None
                tracker = SlaTracker(sla_config, stored, snapshot, envelope.occurred_at)
                due = row.sla_next_due_at if row is not None else None
                if due is not None and due <= envelope.occurred_at:  # the scanner is behind
                    tracker.owe_due()
            decision = decide(
                current,
                updated_at,
                envelope,
                snapshot,
                route,
                now,
                sla=tracker,
                said_priority_before=said_priority,
                said_group_before=said_group,
            )
            if decision.stale:
                STALE.inc()
                assert row is not None and current is not None  # only what we hold can be newer
                if row.pruned_at is not None:
                    continue  # a retention stub lacks its text on purpose: an old event must not restore it
                filled = fill_gaps(row.snapshot, envelope.payload)
                # An agent's reply delivered after a newer update is still the first response
                # (GitHub stamps a comment's webhook with the updated_at).
                late_reply = snapshot.comment if is_first_response(snapshot.comment) else None
                if filled is None and (late_reply is None or current.sla.first_responded_at is not None):
                    continue
                # Its content fills what we lack (and a ticket in triage gets another chance);
                # its state is older than ours, so it counts as an update that changes none.
                merged = filled if filled is not None else dict(row.snapshot)
                snapshot = TicketSnapshot.model_validate({**merged, "comment": late_reply})
                snapshot = in_our_teams(snapshot, envelope.source, options.team_of_group)
                if sla_config is not None:
                    tracker = SlaTracker(sla_config, row.sla_clock, snapshot, envelope.occurred_at)
                    if row.sla_next_due_at is not None and row.sla_next_due_at <= envelope.occurred_at:
                        tracker.owe_due()
                as_update = envelope.model_copy(update={"type": EventType.TICKET_UPDATED})
                decision = decide(
                    current,
                    None,
                    as_update,
                    snapshot,
                    route,
                    now,
                    sla=tracker,
                    said_priority_before=said_priority,
                    said_group_before=said_group,
                )
            if row is None:
                row = NewTicket(envelope.ticket_key, envelope.source, snapshot.external_id)
                created.append(row)
                tickets[envelope.ticket_key] = row
            apply_state(row, decision.state, merged, now)
            if tracker is not None and decision.events:
                row.sla_clock = tracker.stored()
                paused = tracker.clock is not None and tracker.clock.paused
                row.sla_next_due_at = next_timer(
                    row.sla_next_due_at, tracker.next_due(), now, tracker.behind, paused
                )
            if book is not None:
                book.move(position(current), position(decision.state))
            for kind, payload in decision.events:
                emitted.append((kind, payload, event_id, row.external_id))
                kinds.append(kind.value)
                if is_team_correction(kind, payload) and (snapshot.subject or snapshot.description):
                    # A human moved the ticket: a labelled example for the next team model (not
                    # without text, as a retention stub that got a partial update has: an example
                    # of nothing, which would replace the ticket's earlier one).
                    session.add(feedback_row(row.ticket_key, snapshot.subject, snapshot.description, payload))
        # The routing events are built while the tickets' state is written, then their outbox
        # messages serialized while their decision rows are inserted (see work_beside).
        messages = RoutingMessages(self.routing_topic, now, WritebackQueue() if options.writeback else None)
        overlap = is_postgres(session)
        writes = self._write_state(session, book, created)
        build = in_slices(messages.build, emitted, BUILD_SLICE)
        await work_beside(build, writes, overlap=overlap, idle=self.idle)
        if messages.writeback is not None:
            await messages.writeback.flush(session, now)
        serialize = in_slices(messages.serialize, messages.events, BUILD_SLICE)
        decisions = insert_rows(session, _table(RoutingDecision), messages.decisions)
        await work_beside(serialize, decisions, overlap=overlap, idle=self.idle)
        await during(self.idle, insert_outbox(session, messages.outbox))
        return ahead + messages.outbox

    async def _write_state(
        self, session: AsyncSession, book: LoadBook | None, created: list[NewTicket]
    ) -> None:
        """The tickets' new state: team loads, loaded tickets' changes (and feedback rows), new rows."""
        if book is not None:
            await persist(session, book)
        await session.flush()
        # Bulk-inserted (one statement): the ORM's per-object work cost more than the routing itself.
        await insert_rows(session, _table(RouterTicket), [ticket_values(row) for row in created])
