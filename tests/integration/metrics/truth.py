"""A naive ground truth for the metrics service's exposition, and a random event stream for it.

:class:`Truth` walks a plain dict of the latest :class:`TicketState` per ticket (plus a few
per-ticket flags and sample lists), in stream order, and computes every series of the backlog
collector from scratch at a given instant. It shares no code with ``services.metrics.backlog``
except the pure Erlang C function and the configuration defaults.

:func:`random_stream` builds events against the *real* clock ``t0`` so a running service (which
uses the wall clock) can be compared: ages, deadlines and warning instants are kept at least
15 minutes away from any boundary during the test, and event times fall either well inside or
well outside the 60-minute flow window. A deadline already past is set before the event that
carries it happened, so a shard replaying (its clock at its events' time) counts the breaches a
live one (at the wall clock) does.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.metrics.backlog import BacklogConfig, agents_needed
from shared.events import (
    TICKET_EVENT_TYPES,
    EventEnvelope,
    EventType,
    RoutingPayload,
    SlaState,
    TicketSnapshot,
    TicketState,
    routing_event,
    ticket_event,
)

Key = tuple[str, tuple[tuple[str, str], ...]]
PRIOS = ("P1", "P2", "P3", "P4")
OPEN_STATUSES = ("new", "open", "pending", "on_hold")
TEAMS = ("billing", "network", "access", "hardware", "security")
SOURCES = ("zendesk", "jira", "email")
MIN = 60.0
H = 3600.0


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else round(dt.timestamp() * 1000)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass
class _Flags:
    fr_seen: bool = False
    fr_breached: bool = False
    res_breached: bool = False
    routed: bool = False
    fr_due: int | None = None  # the last deadlines set: withdrawn and restored, not re-armed
    res_due: int | None = None


@dataclass
class Truth:
    config: BacklogConfig = field(default_factory=BacklogConfig)
    latest: dict[str, TicketState] = field(default_factory=dict)
    flags: dict[str, _Flags] = field(default_factory=dict)
    seen: set[uuid.UUID] = field(default_factory=set)
    teams: set[str] = field(default_factory=lambda: {"triage", "other"})
    sources: set[str] = field(default_factory=lambda: {"other"})  # label values seen (zeros exported)
    received: Counter[str] = field(default_factory=Counter)
    received_keys: set[str] = field(default_factory=set)  # its first ticket event counts a ticket, once
    clock_ms: int = 0  # the service's clock: the latest instant it was given
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, team)
    breaches: Counter[tuple[str, str]] = field(default_factory=Counter)  # (team, kind)
    ttr: list[float] = field(default_factory=list)
    fr: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    res: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    target: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    flow: list[tuple[int, str, str]] = field(default_factory=list)  # (minute, team, in/out/none)
    # Tickets that entered a team's open set by an event of the instant entered_at: that flow's index.
    entered: dict[str, int] = field(default_factory=dict)
    entered_at: int | None = None

    def apply(self, env: EventEnvelope, now_ms: int) -> None:
        """Apply one event as processed at ``now_ms`` (wall time, or its own time in a replay)."""
        self.clock_ms = now_ms = max(self.clock_ms, now_ms)
        self._time_breaches(now_ms)  # the deadlines passed before it, as the service's clock does
        if env.event_id in self.seen:
            return
        self.seen.add(env.event_id)
        if env.type in TICKET_EVENT_TYPES and env.ticket_key not in self.received_keys:
            self.received_keys.add(env.ticket_key)
            self.received[env.source] += 1
            self.sources.add(env.source)
        if "state" not in env.payload:
            return
        new = TicketState.model_validate(env.payload["state"])
        old = self.latest.get(new.ticket_key)
        if old is not None and new.revision < old.revision:
            return
        flags = self.flags.setdefault(new.ticket_key, _Flags())
        team = new.team or "triage"
        self.teams.add(team)
        self.sources.add(new.source)
        prev_team = (old.team or "triage") if old else None
        new_open, prev_open = not new.status.is_resolved, old is not None and not old.status.is_resolved
        created = _ms(new.created_at)
        assert created is not None
        fr_due, res_due = _ms(new.sla.first_response_due), _ms(new.sla.resolution_due)
        responded = _ms(new.sla.first_responded_at)
        if fr_due is not None and fr_due != flags.fr_due:
            flags.fr_breached, flags.fr_due = False, fr_due
        if res_due is not None and res_due != flags.res_due:
            flags.res_breached, flags.res_due = False, res_due
        imported = bool(env.payload.get("history_import"))  # routed by no one: no routing
        if new_open and team != "triage" and team != prev_team and not imported:
            self.counters[("routed", team)] += 1
        if team != "triage" and not flags.routed:
            flags.routed = True
            if new.routed_at is not None and not imported:
                self.ttr.append(max(0, (_ms(new.routed_at) or 0) - created) / 1000)
        if responded is not None and not flags.fr_seen:
            flags.fr_seen = True
            self.fr[team].append(max(0, responded - created) / 1000)
            if fr_due is not None and responded > fr_due and not flags.fr_breached:
                flags.fr_breached = True
                self.breaches[(team, "first_response")] += 1
        if not new_open and (prev_open or old is None):
            self.counters[("resolved", team)] += 1
            end = _ms(new.resolved_at) or now_ms
            seconds = max(0, end - created) / 1000
            self.res[(team, new.priority.value)].append(seconds)
            if res_due is not None and end > res_due and not flags.res_breached:
                flags.res_breached = True
                self.breaches[(team, "resolution")] += 1
        reopened = (old is not None and not prev_open) or (
            old is None and env.type == EventType.TICKET_REOPENED
        )
        if new_open and reopened:
            self.counters[("reopened", team)] += 1
        raised = old is not None and PRIOS.index(new.priority.value) < PRIOS.index(old.priority.value)
        if env.type == EventType.TICKET_ESCALATED or raised:
            self.counters[("escalated", team)] += 1
        minute = min(_ms(env.occurred_at) or now_ms, now_ms) // 60_000
        if _ms(env.occurred_at) != self.entered_at:
            self.entered, self.entered_at = {}, _ms(env.occurred_at)
        if prev_open and (not new_open or team != prev_team):
            entered = self.entered.pop(new.ticket_key, None)
            if entered is None:
                self.flow.append((minute, prev_team or "", "out"))
            else:  # in and out by events of one instant (an import): no flow
                self.flow[entered] = (minute, team, "none")
        if new_open and (not prev_open or team != prev_team):
            self.entered[new.ticket_key] = len(self.flow)
            self.flow.append((minute, team, "in"))
            if fr_due is not None:
                self.target[team].append(max(0, fr_due - created) / 1000)
        self.latest[new.ticket_key] = new
        self._time_breaches(now_ms)

    def _time_breaches(self, now_ms: int) -> None:
        """Deadlines passed while open and not paused count once (what the clock tick does)."""
        for key, st in self.latest.items():
            if st.status.is_resolved or st.sla.paused:
                continue
            flags, team = self.flags[key], st.team or "triage"
            res_due, fr_due = _ms(st.sla.resolution_due), _ms(st.sla.first_response_due)
            if res_due is not None and now_ms > res_due and not flags.res_breached:  # past it
                flags.res_breached = True
                self.breaches[(team, "resolution")] += 1
            if (
                fr_due is not None
                and st.sla.first_responded_at is None
                and now_ms > fr_due
                and not flags.fr_breached
            ):
                flags.fr_breached = True
                self.breaches[(team, "first_response")] += 1

    def expected(self, now_ms: int) -> dict[Key, float]:
        """Every sample of the backlog families at wall time ``now_ms``."""
        self.clock_ms = max(self.clock_ms, now_ms)
        self._time_breaches(now_ms)
        cfg = self.config
        exp: dict[Key, float] = defaultdict(float)
        edges = (*cfg.age_buckets_seconds, math.inf)
        teams = sorted(self.teams)
        for team in teams:
            for prio in PRIOS:
                for name in ("ticket_backlog_open", "ticket_backlog_overdue", "ticket_sla_at_risk"):
                    exp[(name, (("priority", prio), ("team", team)))] += 0
            for status in OPEN_STATUSES:
                exp[("ticket_open_by_status", (("status", status), ("team", team)))] += 0
            for edge in edges:
                exp[("ticket_open_age_bucket", (("le", _le(edge)), ("team", team)))] += 0
            for name in ("ticket_open_age_gcount", "ticket_open_age_gsum", "ticket_oldest_open_age_seconds"):
                exp[(name, (("team", team),))] += 0
            for kind in ("routed", "resolved", "reopened", "escalated"):
                exp[(f"tickets_{kind}_total", (("team", team),))] = self.counters[(kind, team)]
            for kind in ("first_response", "resolution"):
                exp[("sla_breaches_total", (("kind", kind), ("team", team)))] = self.breaches[(team, kind)]
        exp[("ticket_triage_open", ())] += 0
        oldest: dict[str, int] = {}
        for st in self.latest.values():
            if st.status.is_resolved:
                continue
            team, prio = st.team or "triage", st.priority.value
            created = _ms(st.created_at)
            assert created is not None
            exp[("ticket_backlog_open", (("priority", prio), ("team", team)))] += 1
            exp[("ticket_open_by_status", (("status", st.status.value), ("team", team)))] += 1
            age = max(0, now_ms - created)  # created ahead of the clock: aged 0
            for edge in edges:
                if age <= edge * 1000:
                    exp[("ticket_open_age_bucket", (("le", _le(edge)), ("team", team)))] += 1
            exp[("ticket_open_age_gcount", (("team", team),))] += 1
            exp[("ticket_open_age_gsum", (("team", team),))] += age / 1000
            oldest[team] = min(oldest.get(team, created), created)
            due = _ms(st.sla.resolution_due)
            if due is not None and not st.sla.paused:
                warn = min(due, created + math.ceil(cfg.warning_share * (due - created)))
                if now_ms > due:
                    exp[("ticket_backlog_overdue", (("priority", prio), ("team", team)))] += 1
                elif now_ms >= warn:
                    exp[("ticket_sla_at_risk", (("priority", prio), ("team", team)))] += 1
            if team == "triage":
                exp[("ticket_triage_open", ())] += 1
        for team, created in oldest.items():
            exp[("ticket_oldest_open_age_seconds", (("team", team),))] = max(0, now_ms - created) / 1000
        for source in self.sources:
            exp[("tickets_received_total", (("source", source),))] = self.received[source]
        self._histogram(exp, "ticket_time_to_route_seconds", (), self.ttr, cfg.time_to_route_buckets)
        for team, samples in self.fr.items():
            self._histogram(
                exp, "ticket_first_response_seconds", (("team", team),), samples, cfg.first_response_buckets
            )
        for (team, prio), samples in self.res.items():
            self._histogram(
                exp,
                "ticket_resolution_seconds",
                (("priority", prio), ("team", team)),
                samples,
                cfg.resolution_buckets,
            )
        now_minute = now_ms // 60_000
        inflow, outflow = Counter[str](), Counter[str]()
        for minute, team, kind in self.flow:
            if now_minute - cfg.flow_window_minutes < minute <= now_minute and kind != "none":
                (inflow if kind == "in" else outflow)[team] += 1
        per_hour = 60.0 / cfg.flow_window_minutes
        for team in teams:
            i, o = inflow[team] * per_hour, outflow[team] * per_hour
            open_count = sum(
                1 for s in self.latest.values() if not s.status.is_resolved and (s.team or "triage") == team
            )
            hours = open_count / o if o else (math.inf if open_count else 0.0)
            target = self.target.get(team)
            agents = agents_needed(
                i,
                cfg.handle_seconds(team),  # configured: the events carry no agent work time
                sum(target) / len(target) if target else cfg.default_answer_target_seconds,
                cfg.service_level_target,
                cfg.max_agents,
            )
            label = (("team", team),)
            exp[("ticket_inflow_per_hour", label)] = i
            exp[("ticket_outflow_per_hour", label)] = o
            exp[("ticket_net_flow_per_hour", label)] = i - o
            exp[("ticket_backlog_time_to_clear_seconds", label)] = hours * 3600
            exp[("ticket_agents_needed", label)] = float(agents)
            exp[("ticket_agent_workload_erlangs", label)] = i * cfg.handle_seconds(team) / 3600.0
        return dict(exp)

    @staticmethod
    def _histogram(
        exp: dict[Key, float],
        name: str,
        labels: tuple[tuple[str, str], ...],
        samples: list[float],
        bounds: tuple[float, ...],
    ) -> None:
        for edge in (*bounds, math.inf):
            le = tuple(sorted((*labels, ("le", _le(edge)))))
            exp[(f"{name}_bucket", le)] = sum(1 for s in samples if s <= edge)
        exp[(f"{name}_count", labels)] = len(samples)
        exp[(f"{name}_sum", labels)] = sum(samples)

    def recent_sample_counts(self) -> int:
        """The most samples of one team (the service keeps the last 100 per partition)."""
        return max([len(v) for v in self.target.values()] or [0])


# ------------------------------------------------------------------ the random stream
@dataclass
class Stream:
    """Random events built against the real clock ``t0`` (see the module docstring)."""

    t0: datetime
    rng: random.Random
    latest: dict[str, TicketState] = field(default_factory=dict)
    sent: list[EventEnvelope] = field(default_factory=list)
    clock: datetime | None = None  # the stream's own event clock (occurred_at)
    n: int = 0

    def __post_init__(self) -> None:
        self.clock = self.t0 - timedelta(hours=3)

    def _tick(self) -> datetime:
        assert self.clock is not None
        self.clock += timedelta(seconds=self.rng.uniform(1, 20))
        limit_early, late_start = self.t0 - timedelta(minutes=75), self.t0 - timedelta(minutes=45)
        if limit_early < self.clock < late_start:  # clock jump over the flow-window edge
            self.clock = late_start
        return min(self.clock, self.t0 - timedelta(minutes=1))

    def _safe_instant(self, lo: float, hi: float) -> datetime:
        """t0 + U(lo, hi) seconds, but never within 15 minutes around t0..t0+10min."""
        while True:
            value = self.t0 + timedelta(seconds=self.rng.uniform(lo, hi))
            if not self.t0 - timedelta(minutes=15) <= value <= self.t0 + timedelta(minutes=25):
                return value

    def _created(self) -> datetime:
        bands = [(5, 40), (90, 210), (270, 450), (540, 1380), (1500, 4260), (4380, 10020), (10200, 18000)]
        lo, hi = self.rng.choice(bands)
        return self.t0 - timedelta(minutes=self.rng.uniform(lo, hi))

    def _deadline(self, created: datetime) -> datetime | None:
        if self.rng.random() < 0.15:
            return None
        while True:
            due = self._safe_instant(-48 * H, 72 * H)
            if due <= created + timedelta(minutes=1):
                continue
            assert self.clock is not None
            if min(self.clock, self.t0 - timedelta(minutes=1)) <= due <= self.t0:
                continue  # past by the wall clock, not yet by the events': see the docstring
            span = (due - created).total_seconds() * 1000
            warn = created + timedelta(milliseconds=math.ceil(0.75 * span))
            if not self.t0 - timedelta(minutes=15) <= warn <= self.t0 + timedelta(minutes=25):
                return due

    def _emit(self, state: TicketState, etype: EventType) -> list[EventEnvelope]:
        occurred = self._tick()
        env = routing_event(etype, RoutingPayload(state=state), occurred, caused_by=uuid.uuid4())
        self.latest[state.ticket_key] = state
        self.sent.append(env)
        return [env]

    def step(self) -> list[EventEnvelope]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25 or len(self.latest) < 5:
            return self._create()
        if roll < 0.30:  # a redelivery: the same envelope again
            return [rng.choice(self.sent)]
        if roll < 0.33:  # an older decision re-published under a new id: stale by revision
            old = TicketState.model_validate(rng.choice(self.sent).payload["state"])
            env = routing_event(
                EventType.TICKET_STATE_CHANGED,
                RoutingPayload(state=old),
                self._tick(),
                caused_by=uuid.uuid4(),
            )
            return [env]
        if roll < 0.36:  # a later ticket event that is not a creation (counted nowhere)
            key = rng.choice(list(self.latest))
            source, external = key.split(":", 1)
            snap = TicketSnapshot(external_id=external, subject="update")
            return [ticket_event(EventType.TICKET_UPDATED, source, snap, occurred_at=self._tick())]
        return self._change(rng.choice(list(self.latest)))

    def _create(self) -> list[EventEnvelope]:
        rng = self.rng
        self.n += 1
        source = rng.choice(SOURCES)
        external = f"{self.n}-{uuid.uuid4().hex[:6]}"
        key = f"{source}:{external}"
        created = self._created()
        team = rng.choice([None, *TEAMS])
        fr_due = self._deadline(created)
        responded = None
        if rng.random() < 0.3:
            responded = min(created + timedelta(minutes=rng.uniform(1, 600)), self.t0 - timedelta(minutes=2))
        snap = TicketSnapshot(external_id=external, subject=f"ticket {self.n}")
        created_event = ticket_event(EventType.TICKET_CREATED, source, snap, occurred_at=self._tick())
        state = TicketState(
            ticket_key=key,
            source=source,
            revision=1,
            status=rng.choice(["new", "open"]),
            team=team,
            priority=rng.choice(PRIOS),
            category=rng.choice(["billing", "vpn", None]),
            created_at=created,
            routed_at=None
            if team is None
            else min(created + timedelta(seconds=rng.uniform(1, 7200)), self.t0 - timedelta(minutes=2)),
            sla=SlaState(
                first_response_due=fr_due,
                resolution_due=self._deadline(created),
                first_responded_at=responded,
            ),
        )
        return [created_event, *self._emit(state, EventType.TICKET_ROUTED)]

    def _change(self, key: str) -> list[EventEnvelope]:
        rng = self.rng
        old = self.latest[key]
        upd: dict[str, object] = {}
        sla: dict[str, object] = {}
        etype = EventType.TICKET_STATE_CHANGED
        action = rng.choice(
            ["team", "prio", "escalate", "pending", "open", "solve", "solve", "reopen", "respond", "deadline"]
        )
        if action == "team":
            upd["team"] = rng.choice([None, *TEAMS])
            etype = EventType.TICKET_ROUTED
        elif action == "prio":
            upd["priority"] = rng.choice(PRIOS)
        elif action == "escalate":
            upd["priority"], etype = "P1", EventType.TICKET_ESCALATED
        elif action == "pending":
            upd["status"], sla["paused"] = rng.choice(["pending", "on_hold"]), True
        elif action == "open":
            upd["status"], sla["paused"] = "open", False
        elif action == "solve":
            upd["status"], upd["resolved_at"] = rng.choice(["solved", "closed"]), self._tick()
            etype = EventType.TICKET_RESOLVED
        elif action == "reopen":
            upd["status"], upd["resolved_at"], sla["paused"] = "open", None, False
            sla["resolution_due"] = self._deadline(old.created_at)
            etype = EventType.TICKET_REOPENED
        elif action == "respond" and old.sla.first_responded_at is None:
            sla["first_responded_at"] = self.t0 - timedelta(minutes=rng.uniform(16, 120))
        elif action == "deadline":
            sla["resolution_due"] = self._deadline(old.created_at)
            sla["first_response_due"] = self._deadline(old.created_at)
        new = TicketState.model_validate(
            {**old.model_dump(), **upd, "sla": {**old.sla.model_dump(), **sla}, "revision": old.revision + 1}
        )
        return self._emit(new, etype)
