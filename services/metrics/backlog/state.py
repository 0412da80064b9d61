"""In-memory live backlog of the metrics service: storage and event-driven updates.

Per ticket, fields live in parallel ``array`` columns indexed by a slot number (~55 bytes, see
:mod:`.columns`), the key is a 64-bit digest in a flat hash table (:mod:`.keyindex`), and every
series is an aggregate list updated when a ticket enters or leaves a classification, so a scrape
costs O(label combinations). Where each part is computed:

* counters, histograms, flow windows, Erlang C samples: :meth:`BacklogState._apply_values`, per
  event;
* open-ticket gauges (open, overdue, at risk, by status, age buckets and sums) and their changes
  with the clock (age boundary, at risk, overdue, breach), oldest open ticket:
  :mod:`.transitions`;
* copying and merging them for a scrape, forecast: :mod:`.snapshot`; exposition:
  :mod:`.collector`; JSON summary: :mod:`.views`; persistence: :mod:`.checkpoint`.
"""

from __future__ import annotations

import threading
import uuid
from array import array
from collections import deque
from datetime import datetime
from typing import Any

from shared.events import TICKET_EVENT_TYPES, EventEnvelope, EventType, TicketState, TicketStatus

from . import views
from .aggregates import FlowWindow, Histogram
from .columns import (
    COMPACT_SLACK,
    CREATED_BOUND,
    F_ENTERED,
    F_FR_BREACHED,
    F_FR_DUE_OFF,
    F_FR_PENDING,
    F_FR_SEEN,
    F_NO_STATE,
    F_OPEN,
    F_PAUSED,
    F_RECEIVED,
    F_RES_BREACHED,
    F_RES_DUE_OFF,
    F_RES_PENDING,
    F_RESPONDED,
    F_ROUTED,
    MASK32,
    NEVER,
    NP,
    NS,
    UNSET,
    to_bool,
    to_int,
    to_ms,
)
from .config import FIRST_RESOLVED_STATUS, NO_CATEGORY, PRIORITIES, STATUSES, TRIAGE, BacklogConfig
from .keyindex import SlotIndex, key_hash
from .labels import LabelInterner
from .snapshot import Snapshot, take
from .transitions import add_open, advance_clock, remove_open

_MASK64 = (1 << 64) - 1
_PRIO = {p: i for i, p in enumerate(PRIORITIES)}
_STATUS = {s: i for i, s in enumerate(STATUSES)}
_RESOLVED = frozenset(STATUSES[FIRST_RESOLVED_STATUS:])


def _verdict(value: object) -> bool | None:
    """A target's verdict as the event contract accepts it; None (absent: an older router) stays."""
    return None if value is None else to_bool(value)


def _event_key(event_id: uuid.UUID | str) -> int:
    value = (event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))).int
    return (value >> 64) ^ (value & _MASK64)


class BacklogState:
    """The live backlog of one partition's tickets; every access holds :attr:`lock`."""

    def __init__(self, config: BacklogConfig | None = None) -> None:
        cfg = self.config = config or BacklogConfig()
        self.lock = threading.RLock()  # apply (consumer) vs collect/checkpoint (scrape thread)
        self.teams = LabelInterner(cfg.max_teams, (TRIAGE,))  # triage = 0
        self.sources = LabelInterner(cfg.max_sources)
        self.categories = LabelInterner(cfg.max_categories, (NO_CATEGORY,))
        self.edges_ms = tuple(round(s * 1000) for s in cfg.age_buckets_seconds)
        self.nb = len(self.edges_ms) + 1
        self.now_ms = 0
        # Per-slot columns.
        self.a_team, self.a_cat, self.a_src, self.a_flags = array("H"), array("H"), array("H"), array("H")
        self.a_prio, self.a_status, self.a_bucket = array("B"), array("B"), array("B")
        self.a_created, self.a_fr_due, self.a_res_due, self.a_next = (array("q") for _ in range(4))
        self.a_res_warn = array("q")  # the router's resolution warning instant (see .columns)
        self.a_rev = array("I")  # TicketState.revision: older states are ignored
        # 1: the ticket's states carry the router's verdict on each target (state.sla.*_breached),
        # which its breach counts follow from then on instead of this clock (see _apply_values).
        self.a_verdict = array("B")
        # Slots with a breach left pending by a state that arrived past its deadline (at instants up
        # to pending_at): counted once the clock passes it, unless the ticket's next state settles
        # them first. 4 bytes each: a replay or an import at one instant can leave one per ticket.
        self.pending_slots = array("I")
        self.pending_at = -1
        # Slots (F_ENTERED) that entered a team's open set by a state of the event instant
        # entered_at (a router decision's), their inflow counted at entered_minute: one leaving it
        # by a state of that same instant (a history import, published open and resolved in one
        # decision) waited in no queue, and is no flow in or out. 4 bytes each, as pending_slots.
        self.entered_slots = array("I")
        self.entered_at = UNSET
        self.entered_minute = 0
        self.free = array("I")
        self.index = SlotIndex()
        self.n_open = 0
        t = cfg.max_teams
        self.g_open, self.g_overdue, self.g_risk = [0] * (t * NP), [0] * (t * NP), [0] * (t * NP)
        self.g_status, self.g_age = [0] * (t * NS), [0] * (t * self.nb)
        self.s_created = [0] * t  # per team: sum of the open tickets' created_ms (-> sum of ages)
        # Open tickets created ahead of the clock (a helpdesk's clock running fast) are aged 0 until
        # their creation instant: their slots, and per team their count and sum of created_ms, taken
        # out of the age sum (s_created keeps them, so an older release reading a checkpoint agrees).
        self.unaged: set[int] = set()  # few: a set costs nothing per ticket on time
        self.n_unaged, self.u_created = [0] * t, [0] * t
        self.c_received = [0] * cfg.max_sources
        self.c_routed, self.c_resolved, self.c_reopened, self.c_escalated = ([0] * t for _ in range(4))
        self.c_breach = [0] * (t * 2)  # team*2 + kind (0 first_response, 1 resolution)
        self.h_ttr = Histogram(len(cfg.time_to_route_buckets))
        self.h_fr: dict[int, Histogram] = {}
        self.h_res: dict[int, Histogram] = {}  # team*NP + priority
        self.inflow = FlowWindow(cfg.flow_window_minutes)
        self.outflow = FlowWindow(cfg.flow_window_minutes)
        self.recent_target: dict[int, deque[float]] = {}
        self.seen: set[int] = set()
        self.seen_order: deque[int] = deque()
        self.resolved_fifo: deque[int] = deque()
        self.received_fifo: deque[int] = deque()  # keys known from ticket events only, when first seen
        self.n_stateless = 0  # slots of those still without a state (F_NO_STATE)
        # Lazily deleted heaps, maintained by .transitions (not checkpointed: rebuilt on load).
        self.sched: list[int] = []  # next transition instant per open ticket
        self.oldest: dict[int, list[int]] = {}  # per team: open tickets by creation time
        self.n_oldest = 0  # entries in all of self.oldest

    # ---------------------------------------------------------------- public ingestion API
    def apply(self, envelope: EventEnvelope, now: datetime) -> None:
        """Apply one decoded event (ticket or routing) observed at processing time ``now``."""
        with self.lock:
            seen = _event_key(envelope.event_id)
            if envelope.type in TICKET_EVENT_TYPES:
                # Counted as received, and no clock move: the ticket topic is read at its own pace
                # (a fetch of it may run hours ahead of the routing topic's in a replay), and a
                # clock moved to its time would count deadlines the routing events met as missed.
                # Whatever its type: the router creates a ticket from its first event, and intake
                # publishes a new ticket given a status as ticket.status_changed.
                if seen not in self.seen:
                    self._receive(envelope.ticket_key, envelope.source)
                    self._remember(seen)
                return
            advance_clock(self, now)  # the function, not the method: one call less per event
            if seen in self.seen:
                return
            # The envelope was validated by EventEnvelope.from_bytes; reading the raw dict here
            # avoids a second pydantic pass, which would dominate the cost per event. Read before
            # the event id is recorded: an event that cannot be read must fail each retry (and
            # reach the dead-letter topic), not pass as already seen.
            s = envelope.payload["state"]
            sla = s.get("sla") or {}
            values = (
                s["ticket_key"],
                to_int(s.get("revision", 0)),
                s["source"],
                s["status"],
                s.get("team"),
                s["priority"],
                s.get("category"),
                to_ms(s["created_at"]),
                to_ms(s.get("routed_at")),
                to_ms(s.get("resolved_at")),
                to_ms(sla.get("first_response_due")),
                to_ms(sla.get("resolution_due")),
                to_ms(sla.get("resolution_warning_at")),
                to_ms(sla.get("first_responded_at")),
                to_bool(sla.get("paused")),
                to_ms(envelope.occurred_at),
                envelope.type,
                _verdict(sla.get("first_response_breached")),
                _verdict(sla.get("resolution_breached")),
                to_bool(envelope.payload.get("history_import", False)),
                envelope.payload.get("previous_status") in _RESOLVED,
            )
            self._apply_values(*values)
            self._remember(seen)  # only once applied: an event that failed is applied on its retry

    def apply_state(
        self,
        state: TicketState,
        now: datetime,
        *,
        event_id: uuid.UUID | None = None,
        event_type: EventType | None = None,
        occurred_at: datetime | None = None,
        history_import: bool = False,
        previous_status: TicketStatus | None = None,
    ) -> None:
        """Typed variant of :meth:`apply` for a decoded routing payload's state (``history_import``,
        ``previous_status``: the payload's)."""
        with self.lock:
            advance_clock(self, now)
            seen = None if event_id is None else _event_key(event_id)
            if seen is not None and seen in self.seen:
                return
            sla = state.sla
            self._apply_values(
                state.ticket_key,
                state.revision,
                state.source,
                state.status.value,
                state.team,
                state.priority.value,
                state.category,
                to_ms(state.created_at),
                to_ms(state.routed_at),
                to_ms(state.resolved_at),
                to_ms(sla.first_response_due),
                to_ms(sla.resolution_due),
                to_ms(sla.resolution_warning_at),
                to_ms(sla.first_responded_at),
                sla.paused,
                to_ms(occurred_at or now),
                event_type,
                sla.first_response_breached,
                sla.resolution_breached,
                history_import,
                previous_status is not None and previous_status.is_resolved,
            )
            if seen is not None:
                self._remember(seen)

    def record_received(self, source: str, now: datetime, event_id: uuid.UUID | None = None) -> None:
        """Count one ticket received by intake (``tickets_received_total{source}``)."""
        with self.lock:
            advance_clock(self, now)
            seen = None if event_id is None else _event_key(event_id)
            if seen is None or seen not in self.seen:
                self.c_received[self.sources.intern_name(source)] += 1
                if seen is not None:
                    self._remember(seen)

    def advance_clock(self, now: datetime) -> None:
        """Move the clock forward (never back) and apply the time transitions now due."""
        advance_clock(self, now)

    # ---------------------------------------------------------------- event-driven transitions
    def _receive(self, key: str, source: str) -> None:
        """Count a ticket received once per key, at its first ticket event of any type: intake
        also emits ticket.created for an update of an existing ticket (one without a status), and a
        new ticket can come as any other type. A key seen before its routing state gets a
        stateless slot; beyond ``resolved_retention`` of them, the oldest are forgotten."""
        h = key_hash(key)
        slot = self.index.get(h)
        if slot >= 0:
            if self.a_flags[slot] & F_RECEIVED:
                return
            self.a_flags[slot] |= F_RECEIVED
        else:
            slot = self._alloc_slot()
            self.index.put(h, slot)
            self.a_flags[slot], self.a_rev[slot], self.a_next[slot] = F_RECEIVED | F_NO_STATE, 0, NEVER
            self.a_created[slot] = self.a_fr_due[slot] = self.a_res_due[slot] = UNSET
            self.a_res_warn[slot] = UNSET
            self.n_stateless += 1
            fifo = self.received_fifo
            fifo.append(h)
            while len(fifo) > self.config.resolved_retention:  # most got their state long since
                old = fifo.popleft()
                if (s := self.index.get(old)) >= 0 and self.a_flags[s] & F_NO_STATE:
                    self._forget(old, s)
                    self.n_stateless -= 1
        self.c_received[self.sources.intern_name(source)] += 1

    def _remember(self, key: int) -> None:
        """Record an event as applied (after its effects: a retry of one that raised applies it)."""
        self.seen.add(key)
        self.seen_order.append(key)
        if len(self.seen_order) > self.config.seen_event_ids:
            self.seen.discard(self.seen_order.popleft())

    def _apply_values(
        self,
        key: str,
        revision: int,
        source: str,
        status_name: str,
        team_name: str | None,
        prio_name: str,
        category: str | None,
        created: int,
        routed: int,
        resolved: int,
        fr_due: int,
        res_due: int,
        res_warn: int,
        responded: int,
        paused: bool,
        event_ms: int,
        event_type: EventType | None,
        fr_verdict: bool | None = None,
        res_verdict: bool | None = None,
        history_import: bool = False,
        was_resolved: bool = False,
    ) -> None:
        """Store a ticket's latest state and count its event-driven transitions (routed, resolved,
        reopened, escalated, breaches, histograms, flows); the open-ticket gauges follow through
        :func:`.transitions.remove_open` / :func:`.transitions.add_open`.

        Breaches: from a ticket's first state carrying the router's verdicts (``*_verdict`` not
        None), each target counts once, when the router first says it breached: the router judges a
        reply or solve by its own instant, however late it is delivered, and fires the breach once
        the deadline passed (``sla.breached``). States of older routers are judged here: on this
        clock, and by the response and resolved instants.

        ``history_import``: the state is one of a ticket first seen already solved (routed open and
        resolved in one decision, see ``RoutingPayload.history_import``). Nobody routed it while it
        waited: it is no routing, and its creation -> import instant (months for a backfill) no time
        to route; its resolution counts, on the source's instants. The routed state alone looks like
        a live routing, and a counter cannot give back what it counted, hence the router's word."""
        h = key_hash(key)
        slot = self.index.get(h)
        revision = min(max(revision, 0), MASK32)
        prev_rev = self.a_rev[slot] if slot >= 0 else 0
        kept = min(max(created, -CREATED_BOUND), CREATED_BOUND)  # stored (see CREATED_BOUND)
        if revision < prev_rev:
            return  # an older decision re-published after a newer one: never move backwards
        if event_ms != self.entered_at:  # before the flags are read: the entries of an instant end
            self._end_instant(event_ms)
        team = 0 if team_name is None else self.teams.intern_name(team_name)
        prio, status = _PRIO[prio_name], _STATUS[status_name]
        new_open = status < FIRST_RESOLVED_STATUS
        existed = slot >= 0 and not self.a_flags[slot] & F_NO_STATE
        fr_limit, res_limit = fr_due, res_due  # the deadlines a response / resolve is judged by
        fr_pending = UNSET  # a pending first-response deadline this state is to settle
        # The router's verdicts count from the ticket's first state carrying them, and a state of an
        # older router after it (a rolling deploy) does not give the count back to this clock.
        verdicts = (
            fr_verdict is not None or res_verdict is not None or (existed and self.a_verdict[slot] == 1)
        )
        late = False  # see the first state below
        if existed:
            f = self.a_flags[slot]
            prev_team, prev_prio, prev_created = self.a_team[slot], self.a_prio[slot], self.a_created[slot]
            prev_open = bool(f & F_OPEN)
            if prev_open:
                remove_open(self, slot)
        if existed and verdicts:
            f &= ~(F_FR_PENDING | F_RES_PENDING)  # the verdicts settle what this clock left pending
        elif existed:
            # A breach left pending by the previous state (its deadline was past when it arrived, see
            # transitions.add_open) is settled by this one, decided at the same instant: judged by its
            # response or resolved instant when it ends that deadline (the router sends no deadline
            # with either: the pending one is used), counted as of the previous state otherwise.
            if f & F_FR_PENDING:
                if (responded != UNSET or not new_open) and fr_due in (UNSET, self.a_fr_due[slot]):
                    fr_limit = fr_pending = self.a_fr_due[slot]
                else:
                    f |= F_FR_BREACHED
                    self.c_breach[prev_team * 2] += 1
            if f & F_RES_PENDING:
                if not new_open and res_due in (UNSET, self.a_res_due[slot]):
                    res_limit = self.a_res_due[slot]
                else:
                    f |= F_RES_BREACHED
                    self.c_breach[prev_team * 2 + 1] += 1
            f &= ~(F_FR_PENDING | F_RES_PENDING)
            # A different deadline is a new obligation that can be breached again; one withdrawn
            # (paused, solved: the router sends none) and restored is the same obligation.
            if fr_due != UNSET and self.a_fr_due[slot] != fr_due:
                f &= ~F_FR_BREACHED
            if res_due != UNSET and self.a_res_due[slot] != res_due:
                f &= ~F_RES_BREACHED
        else:
            if slot < 0:
                slot = self._alloc_slot()
                self.index.put(h, slot)
            else:
                self.n_stateless -= 1  # known from its ticket events: its first state
            f = self.a_flags[slot] & F_RECEIVED  # 0 for a new slot (see _alloc_slot)
            # A ticket the router held resolved before this state, unknown here (forgotten, see
            # resolved_retention, or resolved before the stream began): a helpdesk's solved ->
            # closed days later, a reopen (in the team it had). Its routing, resolution, time to
            # route, first response and the breaches its verdicts say were counted back then, if
            # ever: not again now.
            late = was_resolved
            if late:
                f |= F_ROUTED | F_FR_SEEN
                f |= (F_FR_BREACHED if fr_verdict else 0) | (F_RES_BREACHED if res_verdict else 0)
            self.a_fr_due[slot] = self.a_res_due[slot] = self.a_res_warn[slot] = UNSET
            prev_team, prev_prio, prev_created, prev_open = -1, prio, UNSET, False
        self.a_team[slot], self.a_prio[slot], self.a_status[slot] = team, prio, status
        self.a_rev[slot] = revision
        self.a_verdict[slot] = 1 if verdicts else 0
        self.a_cat[slot] = self.categories.intern(category) if category else 0
        self.a_src[slot] = self.sources.intern_name(source)
        self.a_created[slot] = kept
        if fr_due != UNSET:
            self.a_fr_due[slot] = fr_due
        if res_due != UNSET:
            self.a_res_due[slot], self.a_res_warn[slot] = res_due, res_warn
        f &= ~(F_OPEN | F_PAUSED | F_RESPONDED | F_FR_DUE_OFF | F_RES_DUE_OFF)
        f |= F_OPEN if new_open else 0
        f |= (F_PAUSED if paused else 0) | (F_RESPONDED if responded != UNSET else 0)
        f |= (F_FR_DUE_OFF if fr_due == UNSET else 0) | (F_RES_DUE_OFF if res_due == UNSET else 0)
        minute, now_minute = min(event_ms, self.now_ms) // 60_000, self.now_ms // 60_000

        if new_open and team != 0 and team != prev_team and not history_import and not late:
            self.c_routed[team] += 1
        if team != 0 and not f & F_ROUTED:
            f |= F_ROUTED
            if routed != UNSET and not history_import:
                # Known in triage here, it got its team by this decision, whose instant routed_at
                # misses when an agent moved it in the helpdesk: the router keeps the routed_at of
                # its entry into triage then (and routes at its decision's instant otherwise).
                end = max(routed, event_ms) if existed else routed
                self.h_ttr.observe(self.config.time_to_route_buckets, max(0, end - created) / 1000)
        if responded != UNSET and not f & F_FR_SEEN:
            f |= F_FR_SEEN
            self._hist(self.h_fr, team, len(self.config.first_response_buckets)).observe(
                self.config.first_response_buckets, max(0, responded - created) / 1000
            )
            if not verdicts and fr_limit != UNSET and responded > fr_limit and not f & F_FR_BREACHED:
                f |= F_FR_BREACHED
                self.c_breach[team * 2] += 1
        if not new_open and (prev_open or not existed) and not late:
            self.c_resolved[team] += 1
            end = resolved if resolved != UNSET else self.now_ms
            seconds = max(0, end - created) / 1000
            self._hist(self.h_res, team * NP + prio, len(self.config.resolution_buckets)).observe(
                self.config.resolution_buckets, seconds
            )
            if not verdicts and res_limit != UNSET and end > res_limit and not f & F_RES_BREACHED:
                f |= F_RES_BREACHED
                self.c_breach[team * 2 + 1] += 1
            # Solved with no reply after the pending first-response deadline (the router's rule).
            if fr_pending != UNSET and responded == UNSET and end > fr_pending and not f & F_FR_BREACHED:
                f |= F_FR_BREACHED
                self.c_breach[team * 2] += 1
            self.resolved_fifo.append(h)
        elif late and not new_open:
            self.resolved_fifo.append(h)  # forgettable all the same
        if fr_verdict and not f & F_FR_BREACHED:
            f |= F_FR_BREACHED
            self.c_breach[team * 2] += 1
        if res_verdict and not f & F_RES_BREACHED:
            f |= F_RES_BREACHED
            self.c_breach[team * 2 + 1] += 1
        reopened = (existed and not prev_open) or (not existed and event_type == EventType.TICKET_REOPENED)
        if new_open and reopened:
            self.c_reopened[team] += 1
        # The revision held again (> 0: routers number from 1) is the state applied already, re-
        # published (the outbox after a crash) once its event id left the seen window: the one
        # count an identical state would otherwise repeat is its escalation event's.
        repeated = existed and 0 < revision == prev_rev
        if (event_type == EventType.TICKET_ESCALATED and not repeated) or (existed and prio < prev_prio):
            self.c_escalated[team] += 1
        if prev_open and (not new_open or team != prev_team):
            if f & F_ENTERED:  # in and out at one instant: no flow at all
                self.inflow.remove(prev_team, self.entered_minute)
                f &= ~F_ENTERED
            else:
                self.outflow.add(prev_team, minute, now_minute)
        if new_open and (not prev_open or team != prev_team):
            counted = self.inflow.add(team, minute, now_minute)
            if counted and (minute == self.entered_minute or not self.entered_slots):
                self.entered_minute = minute
                self.entered_slots.append(slot)
                f |= F_ENTERED
            if fr_due != UNSET:
                self._recent(self.recent_target, team).append(max(0, fr_due - created) / 1000)
        self.a_flags[slot] = f
        if new_open:
            add_open(self, slot, not prev_open or team != prev_team or kept != prev_created, arrived=True)
        else:
            self.a_next[slot] = NEVER
            self._evict_resolved()

    def _end_instant(self, event_ms: int) -> None:
        """A state of another event instant: the entries of the previous one are no longer."""
        flags = self.a_flags
        for slot in self.entered_slots:
            flags[slot] &= ~F_ENTERED
        del self.entered_slots[:]
        self.entered_at = event_ms

    # ---------------------------------------------------------------- storage helpers
    def _alloc_slot(self) -> int:
        if self.free:
            return self.free.pop()
        for column in (
            self.a_team,
            self.a_cat,
            self.a_src,
            self.a_flags,
            self.a_prio,
            self.a_status,
            self.a_bucket,
            self.a_rev,
            self.a_verdict,
        ):
            column.append(0)
        for column in (self.a_created, self.a_fr_due, self.a_res_due, self.a_res_warn):
            column.append(UNSET)
        self.a_next.append(NEVER)
        return len(self.a_flags) - 1

    def _evict_resolved(self) -> None:
        fifo, limit = self.resolved_fifo, self.config.resolved_retention
        while fifo and self.n_used - self.n_open - self.n_stateless > limit:
            h = fifo.popleft()
            slot = self.index.get(h)
            if slot >= 0 and not self.a_flags[slot] & (F_OPEN | F_NO_STATE):
                self._forget(h, slot)
        if len(fifo) > 2 * limit + COMPACT_SLACK:  # drop entries of reopened/forgotten tickets
            keep = [
                h
                for h in dict.fromkeys(fifo)
                if (s := self.index.get(h)) >= 0 and not self.a_flags[s] & F_OPEN
            ]
            self.resolved_fifo = deque(keep)

    def _forget(self, h: int, slot: int) -> None:
        self.index.remove(h)
        self.a_flags[slot], self.a_next[slot] = 0, NEVER
        self.free.append(slot)

    def open_slots(self) -> list[int]:
        return [s for s, f in enumerate(self.a_flags) if f & F_OPEN]

    @property
    def n_used(self) -> int:
        return len(self.a_flags) - len(self.free)

    def _hist(self, table: dict[int, Histogram], key: int, n_buckets: int) -> Histogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = Histogram(n_buckets)
        return hist

    def _recent(self, table: dict[int, deque[float]], team: int) -> deque[float]:
        ring = table.get(team)
        if ring is None:
            ring = table[team] = deque(maxlen=self.config.recent_samples)
        return ring

    # ---------------------------------------------------------------- reads
    def team_open(self, team: int) -> int:
        return sum(self.g_open[team * NP : team * NP + NP])

    def snapshot(self) -> Snapshot:
        """A mergeable copy of the aggregates, O(teams x label values) (see :mod:`.snapshot`)."""
        with self.lock:
            return take(self)

    def forecast(self, team: int) -> dict[str, float]:
        """Flow per hour, hours to clear and Erlang C agents of one team (see :mod:`.snapshot`)."""
        snap = self.snapshot()
        name = self.teams.values[team]
        return snap.forecast(name, snap.teams[name])

    def summary(self) -> dict[str, Any]:
        """JSON-ready per-team view for ``GET /v1/backlog`` (see :mod:`.views`)."""
        return views.summary(self.snapshot())

    # ---------------------------------------------------------------- checkpoint
    def to_checkpoint(self) -> bytes:
        from .checkpoint import capture, seal

        with self.lock:
            body = capture(self)
        return seal(body)  # outside the lock: see capture

    @classmethod
    def from_checkpoint(cls, data: bytes) -> BacklogState:
        from .checkpoint import load

        return load(data)
