"""Time transitions: the part of an open ticket's classification that changes with the clock.

An open ticket changes age bucket, becomes at risk, overdue, or breaches a first-response target
as time passes, with no event. :func:`add_open` classifies one open ticket at the state's clock,
counts it into the open-ticket gauges of its :class:`.BacklogState` (open, overdue, at risk, by
status, age buckets, age sum; breach counters when a deadline has passed, for tickets whose states
carry no router verdicts: see ``BacklogState._apply_values``) and schedules the next
instant at which that classification can change; :func:`remove_open` uncounts it. A ticket created
ahead of the clock (a helpdesk's clock running fast) is aged 0 until its creation instant.
:func:`advance_clock` moves the clock and re-classifies every ticket whose instant has come.
Event-driven changes (counters, histograms, flows) are in :meth:`.BacklogState._apply_values`.

Schedule: one min-heap (``state.sched``) holding, per open ticket, its next transition instant
as a plain int ``time_ms << 32 | slot`` (no tuples). Entries are deleted lazily: one is live
only while its instant equals the slot's ``a_next`` column. Oldest open ticket per team: one heap
per team (``state.oldest``) keyed ``created_ms << 32 | slot``, an entry live while that slot is
open in that team with that creation time. Both are rebuilt from the columns when stale entries
outnumber live ones, and after a checkpoint load (they are not stored).

These are functions of the state rather than methods of an object it owns: the per-event path
then costs no extra call or attribute hop, and no reference cycle keeps a dropped shard alive.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from datetime import datetime
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING

from .columns import (
    COMPACT_SLACK,
    F_AT_RISK,
    F_FR_BREACHED,
    F_FR_DUE_OFF,
    F_FR_PENDING,
    F_OPEN,
    F_OVERDUE,
    F_PAUSED,
    F_RES_BREACHED,
    F_RES_DUE_OFF,
    F_RES_PENDING,
    F_RESPONDED,
    MASK32,
    NEVER,
    NP,
    NS,
    UNSET,
    to_ms,
)

if TYPE_CHECKING:
    from .state import BacklogState


def advance_clock(st: BacklogState, now: datetime) -> None:
    """Move the clock forward (never back) and re-classify the open tickets now due."""
    ms = to_ms(now)
    with st.lock:
        if ms > st.now_ms:
            st.now_ms = ms
        if st.pending_slots and st.pending_at < st.now_ms:
            settle_pending(st)
        # A rebuild inside add_open replaces st.sched; entries still due stay in this list.
        heap, a_next, flags = st.sched, st.a_next, st.a_flags
        limit = (st.now_ms + 1) << 32
        while heap and heap[0] < limit:
            key = heappop(heap)
            slot = key & MASK32
            if a_next[slot] == key >> 32 and flags[slot] & F_OPEN:
                remove_open(st, slot)
                add_open(st, slot)


def settle_pending(st: BacklogState) -> None:
    """Count the breaches left pending once the clock has passed the latest instant one was left at:
    no state decided at their instant settled them (see add_open). Nothing else about the ticket
    changes (it was counted overdue when it arrived), so it is not reclassified: an event of an
    overdue ticket costs no more than it did before breaches could be pending."""
    flags, team = st.a_flags, st.a_team
    for slot in st.pending_slots:
        f = flags[slot]
        if not f & F_OPEN:
            continue  # solved meanwhile: its next state settled it (state._apply_values)
        if f & F_RES_PENDING:
            f = (f | F_RES_BREACHED) & ~F_RES_PENDING
            st.c_breach[team[slot] * 2 + 1] += 1
        if f & F_FR_PENDING:
            f = (f | F_FR_BREACHED) & ~F_FR_PENDING
            st.c_breach[team[slot] * 2] += 1
        flags[slot] = f
    del st.pending_slots[:]


def add_open(st: BacklogState, slot: int, joined: bool = False, arrived: bool = False) -> None:
    """Classify open ticket ``slot`` at the clock, count it into the gauges and schedule its next
    transition. ``joined``: it just entered its team's open set (or its creation time changed), so
    it also joins that team's oldest-open heap.

    ``arrived``: an event just applied this state, at the clock. A deadline already past then is
    overdue at once, but its breach is left pending (``F_*_PENDING``) until the clock moves on (the
    next millisecond): the router may have decided the ticket's next state at the same instant, and
    that state may end it. A history import is published open (deadlines from the original
    creation, long past) and resolved at the source's solved instant in one decision;
    :meth:`.BacklogState._apply_values` settles a pending breach by that state's instants.
    """
    now, created, f = st.now_ms, st.a_created[slot], st.a_flags[slot] & ~(F_AT_RISK | F_OVERDUE)
    team, prio = st.a_team[slot], st.a_prio[slot]
    edges = st.edges_ms
    bucket = bisect_left(edges, max(0, now - created))  # age <= edge -> that bucket
    nxt = created + edges[bucket] + 1 if bucket < len(edges) else NEVER
    ahead = created > now  # created ahead of the clock (a skewed helpdesk clock): age 0 until then
    if ahead:
        nxt = created  # then it joins the age sum
    # A deadline is missed once the clock is past it, not at it (``now > due``; the next
    # classification is at ``due + 1``): the router's rule, and ours for a reply or a resolution
    # (later than the deadline). Counted at the instant, a ticket solved at it was a breach here
    # whenever a scrape or another event of that instant came before its solve. A ticket counted by
    # the router's verdicts (a_verdict) is only classified here: its breaches come with its states.
    judged = st.a_verdict[slot]
    if not f & F_PAUSED:
        due = st.a_res_due[slot]
        if due != UNSET and not f & F_RES_DUE_OFF:
            if now > due:
                f |= F_OVERDUE
                if f & F_RES_BREACHED or judged:
                    pass
                elif arrived:
                    f |= F_RES_PENDING
                    st.pending_slots.append(slot)
                    st.pending_at = now
                else:
                    f = (f | F_RES_BREACHED) & ~F_RES_PENDING
                    st.c_breach[team * 2 + 1] += 1
            else:
                warn = st.a_res_warn[slot]  # the instant the router's scanner warns at
                warn = warn_at(st.config.warning_share, created, due) if warn == UNSET else min(warn, due)
                if now >= warn:
                    f |= F_AT_RISK
                    nxt = min(nxt, due + 1)
                else:
                    nxt = min(nxt, warn)
        due = st.a_fr_due[slot]
        if due != UNSET and not judged and not f & (F_RESPONDED | F_FR_BREACHED | F_FR_DUE_OFF):
            if arrived and now > due:
                f |= F_FR_PENDING
                st.pending_slots.append(slot)
                st.pending_at = now
            elif now > due:
                f = (f | F_FR_BREACHED) & ~F_FR_PENDING
                st.c_breach[team * 2] += 1
            else:
                nxt = min(nxt, due + 1)
    st.a_flags[slot], st.a_bucket[slot] = f, bucket
    tp = team * NP + prio
    st.g_open[tp] += 1
    st.g_status[team * NS + st.a_status[slot]] += 1
    st.g_age[team * st.nb + bucket] += 1
    st.s_created[team] += created
    if ahead:
        st.unaged.add(slot)
        st.n_unaged[team] += 1
        st.u_created[team] += created
    if f & F_OVERDUE:
        st.g_overdue[tp] += 1
    elif f & F_AT_RISK:
        st.g_risk[tp] += 1
    st.n_open += 1
    if nxt != st.a_next[slot]:
        st.a_next[slot] = nxt
        if nxt != NEVER:
            heappush(st.sched, (nxt << 32) | slot)
            if len(st.sched) > 2 * st.n_open + COMPACT_SLACK:
                rebuild_heaps(st)
    if joined:
        heappush(st.oldest.setdefault(team, []), (created << 32) | slot)
        st.n_oldest += 1
        if st.n_oldest > 2 * st.n_open + COMPACT_SLACK:
            rebuild_heaps(st)


def remove_open(st: BacklogState, slot: int) -> None:
    """Uncount open ticket ``slot`` from the gauges (its heap entries go stale, see above)."""
    team, f = st.a_team[slot], st.a_flags[slot]
    tp = team * NP + st.a_prio[slot]
    st.g_open[tp] -= 1
    st.g_status[team * NS + st.a_status[slot]] -= 1
    st.g_age[team * st.nb + st.a_bucket[slot]] -= 1
    st.s_created[team] -= st.a_created[slot]
    if slot in st.unaged:
        st.unaged.discard(slot)
        st.n_unaged[team] -= 1
        st.u_created[team] -= st.a_created[slot]
    if f & F_OVERDUE:
        st.g_overdue[tp] -= 1
    elif f & F_AT_RISK:
        st.g_risk[tp] -= 1
    st.n_open -= 1


def warn_at(warning_share: float, created: int, due: int) -> int:
    """First millisecond at which ``warning_share`` of the resolution target has elapsed: the
    estimate of the warning instant for states from routers that do not send theirs (wall clock,
    ignoring business hours, pauses and the policy's own share)."""
    return min(due, created + math.ceil(warning_share * (due - created)))


def oldest_created(st: BacklogState, team: int) -> int | None:
    """Creation time of the team's oldest open ticket (stale heap tops are dropped on the way)."""
    heap = st.oldest.get(team)
    while heap:
        key = heap[0]
        slot, created = key & MASK32, key >> 32
        if st.a_flags[slot] & F_OPEN and st.a_team[slot] == team and st.a_created[slot] == created:
            return created
        heappop(heap)
        st.n_oldest -= 1
    return None


def rebuild_heaps(st: BacklogState) -> None:
    """Rebuild both heaps from the columns, without stale entries (O(open tickets))."""
    a_next, a_team, a_created = st.a_next, st.a_team, st.a_created
    st.sched = [(a_next[s] << 32) | s for s in st.open_slots() if a_next[s] != NEVER]
    heapify(st.sched)
    st.oldest = {}
    for s in st.open_slots():
        st.oldest.setdefault(a_team[s], []).append((a_created[s] << 32) | s)
    for heap in st.oldest.values():
        heapify(heap)
    st.n_oldest = st.n_open
