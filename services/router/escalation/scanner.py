"""The SLA timer scanner: fires due warnings and breaches once, with their escalation actions.

Each ticket stores the instant its next escalation is due (``router_tickets.sla_next_due_at``,
indexed), so timers survive restarts and a scan is one range query. Firing exactly once with
several routers: due rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (the write
lock on SQLite), and each escalation first inserts its deterministic timer id into
``sla_fired_timers`` (UNIQUE) in the same transaction as the state change, the decision rows,
the outbox rows and the write-back deliveries: an insert that hits an existing id means another
scanner already fired it. Events are published after the commit, like the batch handler does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.assignment import LoadConfig
from services.router.escalation.models import FiredTimer
from services.router.load.book import LoadBook
from services.router.load.store import persist, prefetch, take_write_lock
from services.router.models import RouterTicket, Team
from services.router.routing.handler import apply_state, position, router_outbox, state_from_row
from services.router.routing.messages import OUTBOX_OWNER, decision_row
from services.router.sla import EscalationDue, EscalationEffects, apply_escalation_actions, due_escalations
from services.router.slas.service import config_version
from services.router.slas.tracking import SlaConfig, SlaTracker, sla_moves, with_warnings
from services.router.writeback.queue import WritebackQueue
from shared.db.dialect import conflict_insert, is_postgres
from shared.db.models import OutboxMessage
from shared.db.outbox import OutboxWriter, PendingMessage, insert_outbox, pending_message, unpublished_of
from shared.events import (
    MAX_TAGS,
    EventType,
    RoutingPayload,
    TicketSnapshot,
    TicketState,
    derived_event_id,
    routing_event,
    utc_now,
)
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

FIRED = Counter("router_sla_escalations_total", "SLA escalations fired, by kind", ["kind"])
UNREADABLE = Counter(
    "router_sla_unreadable_tickets_total", "Due tickets whose stored state could not be read (timers off)"
)


@dataclass(frozen=True)
class ScannerOptions:
    load: LoadConfig | None = None
    overflow_team: str | None = None
    writeback: bool = False
    batch: int = 200
    # How long a scanner waits for its router to load a newer stored SLA configuration before it
    # fires timers under the one it has (a configuration that fails to load must not stop them).
    config_wait_s: float = 60.0


async def claim_timer(session: AsyncSession, due: EscalationDue, now: datetime) -> bool:
    """Insert the timer id; False when it already exists (fired by someone else)."""
    result = await session.execute(
        conflict_insert(session, FiredTimer)
        .values(timer_id=due.timer_id, ticket_key=due.ticket_key, kind=due.kind, fired_at=now)
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


class EscalationScanner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        routing_topic: str,
        sla_provider: Callable[[], SlaConfig],
        clock: Callable[[], datetime] = utc_now,
        options: ScannerOptions = ScannerOptions(),
        outbox: OutboxWriter | None = None,
        sla_refresh: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """``sla_refresh`` reloads what ``sla_provider`` returns when the stored configuration
        changed (``LiveSla.refresh``); with it, tickets are never recomputed under an older
        configuration than the stored one (see ``services/router/slas/recheck.py``)."""
        self.sessions = sessions
        self.producer = producer
        self.routing_topic = routing_topic
        self.sla_provider = sla_provider
        self.sla_refresh = sla_refresh
        # (stored version, monotonic time) since when the loaded configuration is behind it
        self._behind: tuple[int, float] | None = None
        self.processed = 0  # due tickets the last scan looked at: a full batch means a backlog
        self._refresh_failing = False
        self.clock = clock
        self.options = options
        # The batch handler's writer in a router (see router_outbox); its own one otherwise.
        self.outbox = outbox or router_outbox(sessions, producer)

    async def scan_once(self) -> int:
        """Fire what is due now; returns the number of escalations fired."""
        await self.outbox.relay_leftovers()
        self.processed = 0
        if self.sla_refresh is not None:
            try:
                await self.sla_refresh()  # one version query when nothing changed
                self._refresh_failing = False
            except Exception:  # a configuration that fails to load must not stop the timers
                if not self._refresh_failing:  # once, not every scan (the watcher logs each poll)
                    log.exception("SLA configuration refresh failed; the timers fire under the loaded one")
                self._refresh_failing = True
        now = self.clock()
        fired: list[str] = []
        # A failed publish leaves the rows in the outbox; the next scan (or handler) relays them.
        await self.outbox.commit_then_publish(lambda session: self._process(session, now, fired))
        for kind in fired:
            FIRED.labels(kind).inc()
        return len(fired)

    async def _process(self, session: AsyncSession, now: datetime, fired: list[str]) -> list[PendingMessage]:
        await take_write_lock(session)
        # A ticket whose last change is committed but not yet published (by another router, in
        # flight or left by a crash) waits: its next event must not reach the topic before it.
        unpublished = exists().where(
            OutboxMessage.owner == self.outbox.owner, OutboxMessage.key == RouterTicket.ticket_key
        )
        due = RouterTicket.sla_next_due_at <= now
        query = (
            select(RouterTicket)
            .where(due, ~unpublished)
            .order_by(RouterTicket.sla_next_due_at, RouterTicket.ticket_key)
            .limit(self.options.batch)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        rows = (await session.scalars(query)).all()
        if await session.scalar(select(RouterTicket.ticket_key).where(due, unpublished).limit(1)):
            self.outbox.dirty = True  # relayed before the next scan, if its writer has not yet
        if not rows:
            return []
        config = self.sla_provider()
        if self.sla_refresh is not None and not await self._config_current(session, config):
            return []
        self.processed = len(rows)
        # The filter above reads the outbox as of the statement's start: a batch that committed a
        # ticket's change (and unlocked it) while the statement ran is not in it. Its rows, read
        # now that the tickets are locked, go out before this scan's events (a repeat of them by
        # their writer carries the same ids).
        ahead = await unpublished_of(session, self.outbox.owner, [row.ticket_key for row in rows])
        book = None
        if self.options.load is not None:
            book = await prefetch(session, self.options.load, self.options.overflow_team, at=now)
        # A policy's reassign_to team may have gone since the policy was saved (or never have been
        # checked, if it was saved by an older version): such a reassignment is skipped, not made.
        teams = frozenset((await session.scalars(select(Team.name).where(Team.active))).all())
        writeback = WritebackQueue() if self.options.writeback else None
        outbox: list[PendingMessage] = []
        for row in rows:
            outbox += await self._fire_ticket(session, row, config, teams, now, book, writeback, fired)
        if book is not None:
            await persist(session, book)
        if writeback is not None:
            await writeback.flush(session, now)
        await session.flush()  # the tickets' changes and decision rows
        await insert_outbox(session, outbox)
        return ahead + outbox

    async def _config_current(self, session: AsyncSession, config: SlaConfig) -> bool:
        """False while a newer stored configuration has not been loaded: a change committed after
        this scan's refresh may have marked these rows for a recheck, and recomputed under the
        older configuration they would lose the mark; the next scan refreshes first. After
        ``config_wait_s`` (the newer one fails to load), True again, with an error logged."""
        stored = await config_version(session)
        if stored <= config.version:
            self._behind = None
            return True
        if self._behind is None or self._behind[0] != stored:  # a newer change: wait for it anew
            self._behind = (stored, time.monotonic())
        if time.monotonic() - self._behind[1] < self.options.config_wait_s:
            return False
        log.error(
            "SLA timers fire under an older configuration: the stored one has not loaded",
            extra={"loaded_version": config.version, "waited_s": self.options.config_wait_s},
        )
        return True

    async def _fire_ticket(
        self,
        session: AsyncSession,
        row: RouterTicket,
        config: SlaConfig,
        teams: frozenset[str],
        now: datetime,
        book: LoadBook | None,
        writeback: WritebackQueue | None,
        fired: list[str],
    ) -> list[PendingMessage]:
        """``teams``: the active teams, the only ones an escalation may reassign to."""
        snapshot_doc = dict(row.snapshot)
        try:
            tracker = SlaTracker(config, row.sla_clock, TicketSnapshot.model_validate(snapshot_doc), now)
            state = state_from_row(row)
        except ValueError as exc:  # pydantic's ValidationError and a bad enum value are ValueErrors
            # A row this code cannot read (stored by an older version, edited by hand) must not
            # fail every scan, and so every other ticket's timers: its timers are switched off.
            UNREADABLE.inc()
            log.error(
                "ticket unreadable: its SLA timers are switched off",
                extra={"ticket_key": row.ticket_key, "error": f"{type(exc).__name__}: {exc}"[:500]},
            )
            row.sla_next_due_at = None
            return []
        if tracker.clock is None:
            row.sla_next_due_at = None
            return []
        initial = state.model_copy(deep=True)
        # The stored clock's own warning instants (its targets and share), which the row leaves out.
        stored_sla = with_warnings(initial.sla, tracker.deadlines())
        # The live policy and calendar, which may have changed since the clock's last event (a
        # recheck, see slas/recheck.py); a no-op otherwise.
        tracker(state)
        out: list[PendingMessage] = []
        moves = sla_moves(stored_sla, state.sla)
        if moves:
            reasons = [f"SLA recomputed under configuration version {config.version}", *moves]
            cause = derived_event_id("sla-recheck", f"{row.ticket_key}:{config.version}:{state.revision}")
            out.append(
                self._emit(
                    session,
                    EventType.TICKET_STATE_CHANGED,
                    state,
                    initial,
                    reasons,
                    cause,
                    now,
                    row,
                    writeback,
                    [],
                )
            )
        # The deadlines the recheck's refresh worked out already (None: no clock left).
        deadlines = tracker.deadlines()
        policy = None if tracker.clock is None else config.policy_named(tracker.clock.policy)
        escalations = (
            [] if deadlines is None else due_escalations(tracker.clock, deadlines, now, tracker.fired)
        )
        # And what fell due before an event that stopped or paused the clock (SlaTracker.owe_due).
        found = {due.timer_id for due in escalations}
        escalations += [due for due in tracker.take_owed() if due.timer_id not in found]
        escalations.sort(key=lambda d: (d.due_at, d.kind != "warning"))  # a warning before its breach
        for due in escalations:
            tracker.fired.add(due.timer_id)
            if not await claim_timer(session, due, now):
                continue  # another scanner fired it
            fired.append(due.kind)
            before = state.model_copy(deep=True)
            # No clock left: its policy was deleted (no other applies) after this owed escalation
            # fell due under it; it still fires, naming that policy, with no actions.
            policy_name = stored_sla.policy
            if tracker.clock is not None:
                tracker.clock = tracker.clock.on_escalation_fired(due.kind)
                tracker.refresh(state)
                policy_name = tracker.clock.policy
            target = due.target.replace("_", " ")
            if due.kind == "breach":
                what = f"{target} breached: due {due.due_at.isoformat()}"
            else:  # the instant the warning fell due is not the target's deadline
                deadline = "" if due.deadline is None else f", due {due.deadline.isoformat()}"
                what = f"{target} at risk: warning at {due.due_at.isoformat()}{deadline}"
            reasons = [f"SLA {what} (policy {policy_name})"]
            kind = EventType.SLA_BREACHED if due.kind == "breach" else EventType.SLA_WARNING
            cause = derived_event_id("sla-timer", due.timer_id)
            effects = (
                None
                if policy is None
                else apply_escalation_actions(policy, due.kind, state.priority, state.team, teams)
            )
            if effects is not None and state.status.is_resolved:
                # Owed by a ticket solved since: not moved or re-prioritised for it; told and tagged
                # still (a breach tag marks the tickets that breached, whatever the scanner's lag).
                effects = EscalationEffects(
                    state.priority, state.team, tags=effects.tags, notifications=effects.notifications
                )
            if effects is not None and effects.skipped_teams:
                skipped = ", ".join(effects.skipped_teams)
                reasons.append(f"reassign_to {skipped} skipped: not an active team")
                log.warning(
                    "SLA escalation: reassign_to skipped, not an active team",
                    extra={"ticket_key": row.ticket_key, "policy": policy_name, "teams": skipped},
                )
            if effects is not None:
                # A tag past the most a snapshot holds would leave one that no longer validates.
                tags_now = snapshot_doc.get("tags", [])
                fresh = [t for t in effects.tags if t not in tags_now]
                over = fresh[max(MAX_TAGS - len(tags_now), 0) :]
                if over:
                    reasons.append(f"add_tag {', '.join(over)} skipped: the ticket has {MAX_TAGS} tags")
                    effects = dataclasses.replace(effects, tags=[t for t in effects.tags if t not in over])
            changes_anything = effects is not None and (
                effects.priority != state.priority
                or effects.team != state.team
                or any(t not in snapshot_doc.get("tags", []) for t in effects.tags)
            )
            # Notifications ride on the escalation event when there is one, else on this one.
            notify = effects.notifications if effects is not None and not changes_anything else []
            out.append(self._emit(session, kind, state, before, reasons, cause, now, row, writeback, notify))
            if effects is None or not changes_anything:
                continue
            pre_actions = state.model_copy(deep=True)
            changes: list[str] = []
            if effects.priority != state.priority:
                changes.append(f"priority raised {state.priority.value} -> {effects.priority.value}")
                state.priority = effects.priority
            if effects.team != state.team:
                changes.append(f"reassigned {state.team or 'triage'} -> {effects.team}")
                state.team = effects.team
            tags = list(snapshot_doc.get("tags", []))
            new_tags = [t for t in effects.tags if t not in tags]
            if new_tags:
                changes.append(f"tagged {', '.join(new_tags)}")
                snapshot_doc["tags"] = tags + new_tags
            if changes:
                tracker(state)  # a new priority means new targets: the deadlines move
                out.append(
                    self._emit(
                        session,
                        EventType.TICKET_ESCALATED,
                        state,
                        pre_actions,
                        [f"escalation on SLA {due.kind}", *changes],
                        cause,
                        now,
                        row,
                        writeback,
                        effects.notifications,
                    )
                )
        if book is not None:
            book.move(position(initial), position(state))
        apply_state(row, state, snapshot_doc, now)
        row.sla_clock = tracker.stored()
        row.sla_next_due_at = tracker.next_due()
        return out

    def _emit(
        self,
        session: AsyncSession,
        kind: EventType,
        state: TicketState,
        previous: TicketState,
        reasons: list[str],
        cause: uuid.UUID,
        now: datetime,
        row: RouterTicket,
        writeback: WritebackQueue | None,
        notify: list[str] | tuple[str, ...],
    ) -> PendingMessage:
        state.revision += 1
        payload = RoutingPayload(
            state=state.model_copy(deep=True),
            previous_team=previous.team,
            previous_status=previous.status,
            previous_priority=previous.priority,
            reasons=reasons,
            caused_by=cause,
        )
        envelope = routing_event(kind, payload, now, cause)
        session.add(decision_row(kind, str(envelope.event_id), payload, now))
        if writeback is not None:
            writeback.add(kind, envelope, payload, row.external_id, notify)
        return pending_message(OUTBOX_OWNER, self.routing_topic, envelope)

    async def scan_all_due(self) -> None:
        """Scan until a batch comes back short: a full one means a backlog (due timers, or tickets
        marked for a recheck, which fire nothing), worked through without sleeping."""
        await self.scan_once()
        while self.processed >= self.options.batch:
            await self.scan_once()

    async def run_forever(self, poll_s: float) -> None:
        # Timers are durable: a failed scan is retried by the next one.
        await repeat_forever(self.scan_all_due, poll_s, log, "SLA timer scan failed")
