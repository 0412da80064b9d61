"""Accepting ticket events without ever losing an acknowledged one, and without reordering a ticket.

:meth:`EventPublisher.accept` with a delivery id (webhooks, ``Idempotency-Key``):

1. read whether the delivery id was accepted before (answer ``duplicate``, or refuse an
   ``Idempotency-Key`` first used with a different request);
2. if the outbox is empty, send to the broker and wait (bounded, ``INTAKE_PUBLISH_TIMEOUT_S``) for
   the acks=all acknowledgement, then claim the delivery id in a short transaction of its own. A
   failure there is only logged: the broker has the events, and a lost claim only lets a
   redelivery publish them again, under the same event ids;
3. otherwise (outbox not empty, broker down or slow) claim the delivery id and add the events to
   the outbox in one transaction. If that commit fails nothing was recorded: the caller answers
   503 and the sender retries. A crash anywhere before the commit also leaves nothing recorded.

No transaction is open, and no pooled connection held, while the broker answers. A copy of a
delivery this process is accepting at the moment waits for it and answers ``duplicate``; copies
racing into two replicas at once may both publish: the same event ids (derived from the delivery
id), which consumers absorb.

Without a delivery id there is nothing to deduplicate (the event id is random), so steps 2 and 3
run without a transaction; only a park writes to the database.

Ordering argument (per ticket, for a request B that arrives after request A was answered 2xx):
A was either acknowledged by the broker (then anything B produces lands after it), or committed to
the outbox before its 2xx. Then B sees the outbox non-empty and parks B with a larger id: "is the
outbox empty" is a read of the shared database, shared for up to 100 ms per replica, and a
park holds its 2xx until every such cached read started after its commit (the proof is in
services/intake/outbox_gate.py), so this holds across replicas. A copy of A answered ``duplicate``
from the database is held the same way: A may be a park of another replica's, committed a moment
ago. The relay sends
rows in id order and never sends a ticket's next row before the previous one was acknowledged
("waves"), so even concurrent relays (several replicas) can only duplicate, never reorder. Requests
that overlap in time have no order to keep.

A send that timed out may still be delivered by the producer later ("limbo"). Its row stays in
the outbox, and the relay waits for the producer's verdict before it publishes anything: delivered
rows are deleted, failed ones relayed. That keeps the topic free of duplicates in one process;
event ids derive from delivery ids, so any duplicate that slips through is harmless downstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.deliveries import Claim, claim_delivery, key_reused
from services.intake.held import HeldConnections
from services.intake.ledger import NOT_SEEN, DeliveryLedger
from services.intake.outbox_gate import OutboxGate
from shared.cancellation import raise_if_cancelled, wait_event
from shared.db.models import OutboxMessage
from shared.db.outbox import outbox_depth, outbox_row
from shared.events import EventEnvelope
from shared.kafka.producer import REQUEST_TIMEOUT_MS

log = logging.getLogger(__name__)

OUTBOX_OWNER = "intake"
RELAY_BATCH = 500
# Also at most this many bytes of events at once (read, and sent before their acknowledgements): 500
# events near their limit (services/intake/publishable.py) are ~470 MB, above intake's memory limit.
RELAY_BATCH_BYTES = 32 * 1024 * 1024
RELAY_MIN_GAP_S = 0.05
# Arbitrary constant for pg_try_advisory_lock: one relay at a time per database (an optimisation:
# concurrent relays would only duplicate).
_RELAY_LOCK_KEY = 0x1A7A_4E01
# pg_settings gives the limit in milliseconds whatever unit it was set in (SHOW says "1min").
_TAKE_RELAY_LOCK = text(
    "SELECT pg_try_advisory_lock(:k), (SELECT setting FROM pg_settings"
    " WHERE name = 'idle_in_transaction_session_timeout')"
)
# The lock session runs a statement this often within the session's idle-in-transaction limit.
KEEP_ACTIVE_FRACTION = 1 / 3

EVENTS_PUBLISHED = Counter("intake_events_total", "Ticket events accepted, by path", ["path"])
PUBLISHED_TO_BROKER = EVENTS_PUBLISHED.labels("broker")  # resolved once: labels() takes a lock
PARKED_IN_OUTBOX = EVENTS_PUBLISHED.labels("outbox")
DUPLICATES = Counter("intake_duplicate_deliveries_total", "Redeliveries acknowledged without publishing")
OUTBOX_DEPTH = Gauge("intake_outbox_depth", "Events waiting in the outbox for the broker")


class Delivery(StrEnum):
    PUBLISHED = "published"  # acknowledged by the broker
    QUEUED = "queued"  # stored durably in the outbox; published when the broker is back


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery | None  # None for a duplicate
    duplicate: bool = False


_PUBLISHED = Outcome(Delivery.PUBLISHED)  # immutable: shared by every request
_QUEUED = Outcome(Delivery.QUEUED)
_DUPLICATE = Outcome(None, duplicate=True)


class Unavailable(Exception):
    """Neither the broker nor the database took the events; nothing was recorded (answer 503)."""


class KeyReused(Exception):
    """The delivery id was first accepted with a different request; nothing was recorded."""


Future = asyncio.Future[Any]


class EventPublisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        sessions: async_sessionmaker[AsyncSession],
        ledger_connections: HeldConnections,
        gate_connections: HeldConnections,
        topic: str,
        timeout_s: float,
        owner: str = OUTBOX_OWNER,
    ) -> None:
        self.producer = producer
        self.sessions = sessions
        self.topic = topic
        self.timeout_s = timeout_s
        self.owner = owner
        # Longer than the producer's request timeout: a send to a hung broker is answered (delivered
        # or failed) before the relay decides, so a late delivery is never published twice.
        self.relay_wait_s = max(timeout_s, REQUEST_TIMEOUT_MS / 1000 + 5.0)
        self.outbox_pending = 0  # rows we know are waiting; refreshed by the relay
        self._parks = 0  # parks so far: lets the relay tell a fresh park from a stale count
        self._limbo: dict[int, Future] = {}  # outbox row id -> producer future of an unanswered send
        # Deliveries being accepted now: (the outcome, None if not accepted; the request digest).
        self._accepting: dict[tuple[str, str], tuple[asyncio.Future[Outcome | None], str | None]] = {}
        self.gate = OutboxGate(gate_connections, owner)
        self.ledger = DeliveryLedger(ledger_connections)
        self._wake = asyncio.Event()  # set by parks: the relay should look now

    @property
    def degraded(self) -> bool:
        return self.outbox_pending > 0 or bool(self._limbo)

    async def accept(
        self,
        events: list[EventEnvelope],
        dedupe: tuple[str, str] | None = None,
        request_digest: str | None = None,
        unscoped: str | None = None,
        encoded: list[bytes] | None = None,
    ) -> Outcome:
        """Return once the events are acknowledged by the broker or stored in the outbox (or were
        already accepted under ``dedupe`` = (source, delivery id)). Raises :class:`Unavailable`, or
        :class:`KeyReused` when ``dedupe`` was first claimed with another ``request_digest``.
        ``unscoped``: the delivery id an older version recorded the same Idempotency-Key under
        (not per API key); a record there with the same digest is a duplicate too, one with another
        is ignored (it may be another client's)."""
        # Each event's bytes, for the broker or the outbox: the caller's (``refuse_unpublishable``
        # encoded them to check their size) or made here, once either way.
        values = [event.to_bytes() for event in events] if encoded is None else encoded
        if dedupe is None:
            return await self._accept_fresh(events, values)
        # A copy of a delivery this process is accepting now waits for it and is its duplicate: two
        # copies racing in (a vendor retrying a slow first attempt) are published once per process.
        racing = self._accepting.get(dedupe)
        if racing is not None:
            first, first_digest = racing
            if key_reused(first_digest, request_digest):
                raise KeyReused(dedupe[1])
            if await asyncio.shield(first) is None:
                raise Unavailable("the first copy of this delivery was not accepted; retry")
            DUPLICATES.inc()
            return _DUPLICATE
        done: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._accepting[dedupe] = (done, request_digest)
        outcome: Outcome | None = None
        try:
            outcome = await self._accept_delivery(events, values, dedupe, request_digest, unscoped)
            return outcome
        finally:
            del self._accepting[dedupe]
            done.set_result(outcome)

    async def _accept_delivery(
        self,
        events: list[EventEnvelope],
        values: list[bytes],
        dedupe: tuple[str, str],
        request_digest: str | None,
        unscoped: str | None = None,
    ) -> Outcome:
        unacked: dict[int, Future | None] = dict.fromkeys(range(len(events)))
        try:
            # No transaction or pooled connection is held while the broker answers: on SQLite one
            # held its write lock (deliveries went one at a time), on PostgreSQL requests holding
            # every connection waited for one more (the outbox check) until the pool timed out.
            if await self._already_accepted(dedupe, request_digest, unscoped):
                return await self._duplicate_found()
            if events and not self.degraded and await self.gate.outbox_empty():
                unacked = await self._send(events, values)
                if not unacked:
                    await self._record_after_ack(dedupe, len(events), request_digest)
                    PUBLISHED_TO_BROKER.inc(len(events))
                    return _PUBLISHED
            # Parked (or nothing to publish): the delivery id and the events commit together, or
            # neither does and the sender retries.
            async with self.sessions() as session:
                claim = await claim_delivery(session, *dedupe, len(events), request_digest)
                if claim is Claim.CLAIMED:
                    if not events:
                        await session.commit()
                        return _PUBLISHED
                    rows = await self._park(session, events, values, unacked)
                else:  # accepted meanwhile by a concurrent request
                    await session.rollback()
            if claim is Claim.KEY_REUSED:
                raise KeyReused(dedupe[1])
            if claim is not Claim.CLAIMED:
                return await self._duplicate_found()  # with the connection back in the pool
        except KeyReused:
            raise
        except Exception as exc:
            log.error("could not record events; the sender must retry", extra={"error": repr(exc)})
            raise Unavailable("neither the broker nor the database accepted the events") from exc
        return await self._parked(events, rows, unacked)

    async def _duplicate_found(self) -> Outcome:
        """Answer a copy of a delivery found accepted in the database. Another replica may have
        parked its first copy a moment ago, its own 2xx still held (``hold_after_park``): this
        answer is held the same way, or the sender's next update could pass a replica's cached
        "outbox empty" read from before that park and reach the broker ahead of it."""
        found_at = time.monotonic()  # the claim it found had committed before this
        DUPLICATES.inc()
        await self.gate.hold_after_park(found_at)
        return _DUPLICATE

    async def _already_accepted(
        self, dedupe: tuple[str, str], request_digest: str | None, unscoped: str | None = None
    ) -> bool:
        """Whether ``dedupe`` was accepted before; raises :class:`KeyReused` when it was, with
        another ``request_digest``. A record under ``unscoped`` counts only with no other digest."""
        if unscoped is None:
            stored = await self.ledger.accepted(*dedupe)
        else:  # both lookups in one of the ledger's batches
            stored, old = await asyncio.gather(
                self.ledger.accepted(*dedupe), self.ledger.accepted(dedupe[0], unscoped)
            )
            if stored is NOT_SEEN and old is not NOT_SEEN:
                return not key_reused(cast(str | None, old), request_digest)
        if stored is NOT_SEEN:
            return False
        if key_reused(cast(str | None, stored), request_digest):
            raise KeyReused(dedupe[1])
        return True

    async def _accept_fresh(self, events: list[EventEnvelope], values: list[bytes]) -> Outcome:
        """Without a delivery id there is nothing to deduplicate (event ids are random): no
        transaction unless the events must be parked."""
        if not events:
            return _PUBLISHED
        unacked: dict[int, Future | None]
        try:
            if self.degraded or not await self.gate.outbox_empty():
                unacked = dict.fromkeys(range(len(events)))
            else:
                unacked = await self._send(events, values)
                if not unacked:
                    PUBLISHED_TO_BROKER.inc(len(events))
                    return _PUBLISHED
            async with self.sessions() as session:
                rows = await self._park(session, events, values, unacked)
        except Exception as exc:
            log.error("could not record events; the sender must retry", extra={"error": repr(exc)})
            raise Unavailable("neither the broker nor the database accepted the events") from exc
        return await self._parked(events, rows, unacked)

    async def _park(
        self,
        session: AsyncSession,
        events: list[EventEnvelope],
        values: list[bytes],
        unacked: dict[int, Future | None],
    ) -> list[OutboxMessage]:
        rows = [outbox_row(self.owner, self.topic, events[i], values[i]) for i in unacked]
        session.add_all(rows)
        await session.flush()
        await session.commit()
        return rows

    async def _parked(
        self, events: list[EventEnvelope], rows: list[OutboxMessage], unacked: dict[int, Future | None]
    ) -> Outcome:
        committed_at = time.monotonic()
        for row, future in zip(rows, unacked.values(), strict=True):
            if future is not None:
                self._limbo[row.id] = future
        self._parks += 1
        self.outbox_pending += len(rows)
        OUTBOX_DEPTH.set(self.outbox_pending)
        PARKED_IN_OUTBOX.inc(len(rows))
        if len(rows) < len(events):
            PUBLISHED_TO_BROKER.inc(len(events) - len(rows))
        self._wake.set()
        await self.gate.hold_after_park(committed_at)
        return _QUEUED

    async def _outbox_has_rows(self, session: AsyncSession) -> bool:
        found = await session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.owner == self.owner).limit(1)
        )
        return found is not None

    async def _record_after_ack(
        self, dedupe: tuple[str, str], events: int, request_digest: str | None
    ) -> None:
        """Claim the delivery id once the broker has the events. A concurrent duplicate (both read
        "not seen") published them too: the same event ids, which consumers absorb."""
        try:
            await self.ledger.record(*dedupe, events, request_digest)
        except Exception as exc:  # the broker has the events; a lost dedupe row only allows a republish
            log.warning("dedupe row not stored after publish", extra={"error": repr(exc)})

    async def _send(self, events: list[EventEnvelope], values: list[bytes]) -> dict[int, Future | None]:
        """Send with a bounded wait; returns the events not acknowledged, with their producer futures
        (None when never handed to the producer or failed). Futures are never cancelled: a timed-out
        send may still be delivered, and the relay must learn whether it was."""
        futures: list[Future] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                for event, value in zip(events, values, strict=True):
                    futures.append(
                        await self.producer.send(self.topic, value=value, key=event.ticket_key.encode())
                    )
        except Exception as exc:  # timeout (e.g. waiting for metadata) or producer error
            log.warning("broker unavailable, parking events in the outbox", extra={"error": repr(exc)})
        if futures:
            await wait_done_or_deadline(loop, futures, deadline)
        unacked: dict[int, Future | None] = {}
        for index in range(len(events)):
            future = futures[index] if index < len(futures) else None
            if future is None or not future.done():
                unacked[index] = future
            elif future.exception() is not None:
                unacked[index] = None
        if unacked:
            log.warning("broker slow or down, parking events in the outbox", extra={"events": len(unacked)})
        return unacked

    # -- the relay ---------------------------------------------------------------------------------

    async def relay_forever(self, poll_s: float) -> None:
        """Drain the outbox whenever it has rows; runs for the life of the service."""
        while True:
            try:
                sent = await self.relay_once()
                if sent:
                    log.info("outbox relayed", extra={"sent": sent, "left": self.outbox_pending})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled()  # the error may stand for a cancellation: not a failed round
                log.warning("outbox relay failed, will retry", extra={"error": repr(exc)})
            # A round may end normally with its cancellation lost on the way: the shutdown awaiting
            # the relay waited for good.
            raise_if_cancelled()
            # A park wakes the relay early (so ``degraded`` does not outlive a blip by a whole
            # poll period), but at most every RELAY_MIN_GAP_S.
            await asyncio.sleep(min(poll_s, RELAY_MIN_GAP_S))
            await wait_event(self._wake, max(0.0, poll_s - RELAY_MIN_GAP_S))
            self._wake.clear()

    async def relay_once(self) -> int:
        """One relay round: settle limbo sends, then publish what is left in order. Returns the
        number of rows taken out of the outbox."""
        delivered, done = await self._settle_limbo()
        settled = len(delivered)
        if not done:
            await self._refresh_depth()
            return settled
        async with self.sessions() as lock_session:
            taken, idle_limit_s = await self._try_relay_lock(lock_session)
            if not taken:
                await self._refresh_depth()
                return settled
            keeper = _LockKeeper(lock_session, idle_limit_s)
            try:
                async with keeper:
                    if await self._outbox_rows_exist() and await self._broker_reachable():
                        settled += await self._drain(keeper)
            finally:
                if keeper.holding:  # else the lock went with its session: nothing to release
                    await self._release_relay_lock(lock_session)
        await self._refresh_depth()
        return settled

    async def _drain(self, lock: _LockKeeper) -> int:
        """Publish the outbox in order while the relay lock is still ours."""
        sent = 0
        while True:
            if not lock.holding:  # its session was lost: another replica may be draining now
                return sent
            async with self.sessions() as session:
                sizes = (
                    await session.execute(
                        select(OutboxMessage.id, func.length(OutboxMessage.value))
                        .where(OutboxMessage.owner == self.owner)
                        .order_by(OutboxMessage.id)
                        .limit(RELAY_BATCH)
                    )
                ).all()
                ids: list[int] = []
                total = 0
                for row_id, size in sizes:  # the first rows, up to RELAY_BATCH_BYTES (at least one)
                    total += size or 0
                    if ids and total > RELAY_BATCH_BYTES:
                        break
                    ids.append(row_id)
                rows = list(
                    (
                        await session.scalars(
                            select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
                        )
                    ).all()
                    if ids
                    else []
                )
            if not rows:
                return sent
            count, complete = await self._publish_in_waves(rows)
            sent += count
            if not complete:
                return sent

    async def _publish_in_waves(self, rows: list[OutboxMessage]) -> tuple[int, bool]:
        """Wave k holds the k-th row of every ticket, so a ticket's next row is sent only after the
        previous one was acknowledged. Returns (rows published, whether all were)."""
        waves: list[list[OutboxMessage]] = []
        seen: dict[str, int] = {}
        for row in rows:
            index = seen.get(row.key, 0)
            seen[row.key] = index + 1
            if index == len(waves):
                waves.append([])
            waves[index].append(row)
        sent = 0
        for wave in waves:
            try:
                async with asyncio.timeout(self.timeout_s):
                    for row in wave:
                        self._limbo[row.id] = await self.producer.send(
                            row.topic, value=row.value, key=row.key.encode()
                        )
            except Exception as exc:  # what was handed over is in limbo and settled below
                log.warning("outbox relay: broker not taking messages", extra={"error": repr(exc)})
                delivered, _ = await self._settle_limbo()
                return sent + len(delivered), False
            delivered, done = await self._settle_limbo()
            sent += len(delivered)
            # Every row of the wave, by id: limbo also holds the sends of requests that timed out
            # meanwhile, and their deliveries must not stand in for a failed row of the wave.
            if not done or any(row.id not in delivered for row in wave):
                return sent, False
        return sent, True

    async def _settle_limbo(self) -> tuple[set[int], bool]:
        """Wait (bounded) for unanswered sends; delete rows that were delivered, forget failed sends
        (their rows stay for the relay). Returns (the ids of the rows deleted, whether nothing is
        pending)."""
        if not self._limbo:
            return set(), True
        await asyncio.wait(list(self._limbo.values()), timeout=self.relay_wait_s)
        delivered: set[int] = set()
        for row_id, future in list(self._limbo.items()):
            if not future.done():
                continue
            del self._limbo[row_id]
            if not future.cancelled() and future.exception() is None:
                delivered.add(row_id)
        if delivered:
            async with self.sessions() as session, session.begin():
                await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(delivered)))
            self.gate.forget()  # the outbox may be empty now: look again rather than park
        return delivered, not self._limbo

    async def _outbox_rows_exist(self) -> bool:
        async with self.sessions() as session:
            return await self._outbox_has_rows(session)

    async def _broker_reachable(self) -> bool:
        # A metadata round trip has no side effects; sending into a hung broker would leave
        # messages in limbo that a later retry by the producer might duplicate.
        try:
            async with asyncio.timeout(min(self.relay_wait_s, 2.0)):
                await self.producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True

    async def _try_relay_lock(self, session: AsyncSession) -> tuple[bool, float]:
        """Whether the lock was taken, and the session's ``idle_in_transaction_session_timeout``
        in seconds (0: none), read in the same round trip: the services' own or a DBA's."""
        if session.get_bind().dialect.name != "postgresql":
            return True, 0.0  # SQLite: replicas share a host-local file; concurrent relays only duplicate
        taken, idle_limit_ms = (await session.execute(_TAKE_RELAY_LOCK, {"k": _RELAY_LOCK_KEY})).one()
        return bool(taken), int(idle_limit_ms) / 1000

    async def _release_relay_lock(self, session: AsyncSession) -> None:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _RELAY_LOCK_KEY})
            await session.commit()

    async def _refresh_depth(self) -> None:
        parks = self._parks
        depth = await outbox_depth(self.sessions, self.owner)
        # A park that committed while we counted may be missing from ``depth``: keep our count then.
        self.outbox_pending = depth if parks == self._parks else max(depth, self.outbox_pending)
        OUTBOX_DEPTH.set(self.outbox_pending)


class _LockKeeper:
    """Keeps the relay lock's session from sitting idle in its transaction past ``idle_limit_s``
    (its ``idle_in_transaction_session_timeout``, 0: none) while the relay drains on other
    sessions. The lock is a session lock, but the statement that took it opened a transaction,
    which pins the pooled connection (committing would give the connection, and the lock with it,
    back to the pool). A drain waits for the broker's acknowledgements wave after wave, longer than
    any limit, and PostgreSQL ending the session mid-drain handed the lock to another replica. A
    replica frozen mid-drain runs nothing, so its session is still ended then and the lock freed:
    what the limit is for."""

    def __init__(self, session: AsyncSession, idle_limit_s: float) -> None:
        self.session = session
        self.period_s = idle_limit_s * KEEP_ACTIVE_FRACTION
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.lost: Exception | None = None  # why a statement on the session failed

    @property
    def holding(self) -> bool:
        """False once a statement on the lock's session failed: the session, and the lock, are gone."""
        task = self._task
        if self.lost is not None:
            return False
        # A keeper cancelled by a second cancellation of a stopping relay lost nothing.
        return not (
            task is not None and task.done() and not task.cancelled() and task.exception() is not None
        )

    async def __aenter__(self) -> _LockKeeper:
        if self.period_s > 0:  # no limit: nothing ends the session
            self._task = asyncio.create_task(self._keep(), name="outbox-relay-lock-keeper")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is None:
            return
        # Let a statement in flight finish rather than cancel it: the lock is released next on the
        # same session, which a cancelled statement would leave in an unknown state.
        self._stop.set()
        try:
            await self._task
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        except Exception as exc:
            self.lost = exc
            log.warning("outbox relay lost its lock's session", extra={"error": repr(exc)})
        # Awaiting the keeper handed a cancellation of the relay to it, and the keeper may have ended
        # otherwise (its statement finishing as the cancellation came): still the relay's.
        raise_if_cancelled()

    async def _keep(self) -> None:
        while True:
            await wait_event(self._stop, self.period_s)
            if self._stop.is_set():
                return
            await self.session.execute(text("SELECT 1"))


async def wait_done_or_deadline(
    loop: asyncio.AbstractEventLoop, futures: list[Future], deadline: float
) -> None:
    """Wait until every future is done or ``deadline`` passes, never cancelling them (a timed-out
    send may still be delivered). ``asyncio.wait`` does the same with more bookkeeping (a timeout
    per call, sets of done and pending futures): ~7 µs of CPU on a path taken once per request."""
    pending = [future for future in futures if not future.done()]
    if not pending:
        return
    waiter: asyncio.Future[None] = loop.create_future()
    remaining = len(pending)

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    def one_done(_: object) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            wake()

    for future in pending:
        future.add_done_callback(one_done)
    timer = loop.call_at(deadline, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        for future in pending:
            future.remove_done_callback(one_done)
