"""Randomised event streams vs. a naive ground truth walking a plain dict of latest states."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from datetime import datetime

import pytest

from services.metrics.backlog import BacklogConfig, BacklogState
from services.metrics.backlog.keyindex import key_hash
from shared.events import EventEnvelope, EventType, TicketState

from .helpers import BASE, at, envelope, make_state, scrape

TEAMS = ["billing", "tech", "sales", "t4", "t5"]
H = 3600.0
EDGES = (3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600, 168 * 3600)


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else round((dt - BASE).total_seconds() * 1000)


class Model:
    """Naive reference: latest state per ticket plus a transition log for the flow windows."""

    def __init__(self) -> None:
        self.latest: dict[str, TicketState] = {}
        self.flow: list[tuple[int, str, str]] = []  # (minute, team, "in"/"out")
        self.counts: Counter[tuple[str, str]] = Counter()
        # Tickets that entered a team's open set at the instant entered_at: the index of that flow.
        self.entered: dict[str, int] = {}
        self.entered_at = -1

    def record(self, new: TicketState, now_ms: int, known: bool) -> None:
        old = self.latest.get(new.ticket_key) if known else None
        if old is not None and new.revision < old.revision:
            return  # stale re-publication: ignored by contract
        old_open = old is not None and not old.status.is_resolved
        new_open = not new.status.is_resolved
        old_team, new_team = (old.team or "triage") if old else None, new.team or "triage"
        minute = now_ms // 60_000
        if now_ms != self.entered_at:
            self.entered, self.entered_at = {}, now_ms
        if old_open and (not new_open or old_team != new_team):
            entered = self.entered.pop(new.ticket_key, None)
            if entered is None:
                self.flow.append((minute, old_team or "", "out"))
            else:  # in and out by events of one instant (an import): no flow
                self.flow[entered] = (minute, new_team, "none")
        if new_open and (not old_open or old_team != new_team):
            self.entered[new.ticket_key] = len(self.flow)
            self.flow.append((minute, new_team, "in"))
        if new_open and new.team is not None and new_team != old_team:
            self.counts[("routed", new_team)] += 1
        if not new_open and (old is None or old_open):
            self.counts[("resolved", new_team)] += 1
        if new_open and old is not None and not old_open:
            self.counts[("reopened", new_team)] += 1
        self.latest[new.ticket_key] = new

    def expected(self, now_ms: int, share: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        exp: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        oldest: dict[str, int] = {}
        for st in self.latest.values():
            if st.status.is_resolved:
                continue
            team, prio = st.team or "triage", st.priority.value
            created = _ms(st.created_at)
            assert created is not None
            exp[("ticket_backlog_open", (("priority", prio), ("team", team)))] += 1
            exp[("ticket_open_by_status", (("status", st.status.value), ("team", team)))] += 1
            age = now_ms - created
            for edge in (*EDGES, math.inf):
                if age <= edge * 1000:
                    le = "+Inf" if math.isinf(edge) else repr(float(edge))
                    exp[("ticket_open_age_bucket", (("le", le), ("team", team)))] += 1
            oldest[team] = min(oldest.get(team, created), created)
            due = _ms(st.sla.resolution_due)
            if due is not None and not st.sla.paused:
                # The router's warning instant when the state has one, else the wall-clock share.
                warn = _ms(st.sla.resolution_warning_at)
                risk = (
                    now_ms >= min(warn, due)
                    if warn is not None
                    else now_ms - created >= share * (due - created)
                )
                if now_ms > due:  # past it, not at it
                    exp[("ticket_backlog_overdue", (("priority", prio), ("team", team)))] += 1
                elif risk:
                    exp[("ticket_sla_at_risk", (("priority", prio), ("team", team)))] += 1
            if team == "triage":
                exp[("ticket_triage_open", ())] += 1
        for team, created in oldest.items():
            exp[("ticket_oldest_open_age_seconds", (("team", team),))] = (now_ms - created) / 1000
        now_minute = now_ms // 60_000
        inflow: Counter[str] = Counter()
        outflow: Counter[str] = Counter()
        for minute, team, kind in self.flow:
            if now_minute - 60 < minute <= now_minute and kind != "none":
                (inflow if kind == "in" else outflow)[team] += 1
        for team in set(inflow) | set(outflow) | {k[1][-1][1] for k in exp if k[0] == "ticket_backlog_open"}:
            exp[("ticket_inflow_per_hour", (("team", team),))] = inflow[team]
            exp[("ticket_outflow_per_hour", (("team", team),))] = outflow[team]
            exp[("ticket_net_flow_per_hour", (("team", team),))] = inflow[team] - outflow[team]
            open_count = sum(
                v for k, v in exp.items() if k[0] == "ticket_backlog_open" and k[1][1][1] == team
            )
            hours = open_count / outflow[team] if outflow[team] else (math.inf if open_count else 0.0)
            exp[("ticket_backlog_time_to_clear_seconds", (("team", team),))] = hours * 3600
        return exp


COMPARED = (
    "ticket_backlog_open",
    "ticket_open_by_status",
    "ticket_backlog_overdue",
    "ticket_open_age_bucket",
    "ticket_oldest_open_age_seconds",
    "ticket_sla_at_risk",
    "ticket_triage_open",
    "ticket_inflow_per_hour",
    "ticket_outflow_per_hour",
    "ticket_net_flow_per_hour",
    "ticket_backlog_time_to_clear_seconds",
)


def compare(state: BacklogState, model: Model, check_counters: bool) -> None:
    got = scrape(state)
    exp = model.expected(state.now_ms - _ms_epoch(), state.config.warning_share)
    for key in set(got) | set(exp):
        if key[0] in COMPARED:
            assert got.get(key, 0.0) == pytest.approx(exp.get(key, 0.0)), key
    if check_counters:
        for (kind, team), value in model.counts.items():
            assert got[(f"tickets_{kind}_total", (("team", team),))] == value, (kind, team)


def _ms_epoch() -> int:
    return round(BASE.timestamp() * 1000)


def run_stream(seed: int, steps: int, config: BacklogConfig, checkpoint_at: int | None) -> None:
    rng = random.Random(seed)
    state = BacklogState(config)
    model = Model()
    now = 10 * 24 * H
    keys: list[str] = []
    sent: list[EventEnvelope] = []
    check_counters = config.resolved_retention >= steps

    def warning(start: float, due: float | None) -> float | None:
        """A router's warning instant (anywhere from ``start`` to ``due``), or none: an older router."""
        return None if due is None or rng.random() < 0.4 else start + rng.uniform(0, due - start)

    def deliver(new: TicketState, etype: EventType = EventType.TICKET_STATE_CHANGED) -> None:
        known = state.index.get(key_hash(new.ticket_key)) >= 0
        if rng.random() < 0.3:
            state.apply_state(new, at(now), event_type=etype)
        else:
            env = envelope(new, now, etype)
            sent.append(env)
            state.apply(env, at(now))
        model.record(new, round(now * 1000), known)

    for step in range(steps):
        roll = rng.random()
        if roll < 0.2 or not keys:
            key = f"zendesk:{step}"
            keys.append(key)
            created = now - rng.uniform(0, 9 * 24 * H)
            created = float(int(created))
            team = rng.choice([None, *TEAMS])
            res_due = created + rng.uniform(H, 6 * 24 * H) if rng.random() < 0.8 else None
            deliver(
                make_state(
                    key,
                    created,
                    team=team,
                    priority=rng.choice(["P1", "P2", "P3", "P4"]),
                    status=rng.choice(["new", "open"]),
                    routed=None if team is None else now,
                    fr_due=created + rng.choice([1800, 4 * H, 30 * H]) if rng.random() < 0.8 else None,
                    res_due=res_due,
                    res_warn=warning(created, res_due),
                ),
                EventType.TICKET_ROUTED,
            )
        elif roll < 0.3:
            now += rng.choice([1, 59, 600, 3600, rng.uniform(0, 12 * H)])
            now = float(int(now))
            state.advance_clock(at(now))
        elif roll < 0.35 and sent:
            env = rng.choice(sent)  # redelivery: must be a no-op
            state.apply(env, at(now))
        elif roll < 0.38 and check_counters and sent:
            # Re-published older decision under a new event id: the revision makes it a no-op.
            old_state = TicketState.model_validate(rng.choice(sent).payload["state"])
            deliver(old_state)
        else:
            key = rng.choice(keys)
            old = model.latest[key]
            upd: dict[str, object] = {}
            sla: dict[str, object] = {}
            etype = EventType.TICKET_STATE_CHANGED
            action = rng.choice(
                ["team", "prio", "pending", "open", "solve", "reopen", "respond", "same", "deadline"]
            )
            if action == "team":
                upd["team"] = rng.choice([None, *TEAMS])
            elif action == "prio":
                upd["priority"] = rng.choice(["P1", "P2", "P3", "P4"])
            elif action == "pending":
                upd["status"], sla["paused"] = rng.choice(["pending", "on_hold"]), True
            elif action == "open":
                upd["status"], sla["paused"] = "open", False
            elif action == "solve":
                upd["status"], upd["resolved_at"] = rng.choice(["solved", "closed"]), at(now)
                etype = EventType.TICKET_RESOLVED
            elif action == "reopen":
                upd["status"], upd["resolved_at"] = "open", None
                due = now + rng.uniform(0, 48 * H)
                sla["resolution_due"], warn = at(due), warning(now - H, due)
                sla["resolution_warning_at"] = None if warn is None else at(warn)
                etype = EventType.TICKET_REOPENED
            elif action == "respond" and old.sla.first_responded_at is None:
                sla["first_responded_at"] = at(now)
            elif action == "deadline":
                due = now + rng.uniform(-H, 24 * H)
                sla["resolution_due"], warn = at(due), warning(now - 2 * H, due)
                sla["resolution_warning_at"] = None if warn is None else at(warn)
            new_sla = {**old.sla.model_dump(), **sla}
            deliver(
                TicketState.model_validate(
                    {**old.model_dump(), **upd, "sla": new_sla, "revision": old.revision + 1}
                ),
                etype,
            )
        if step % 37 == 0:
            compare(state, model, check_counters)
        if checkpoint_at is not None and step == checkpoint_at:
            before = scrape(state)
            state = BacklogState.from_checkpoint(state.to_checkpoint())
            assert scrape(state) == before
    compare(state, model, check_counters)
    assert state.n_open == sum(1 for s in model.latest.values() if not s.status.is_resolved)


@pytest.mark.parametrize("seed", range(6))
def test_random_stream_matches_naive_ground_truth(seed: int) -> None:
    run_stream(seed, 1500, BacklogConfig(), checkpoint_at=700)


@pytest.mark.parametrize("seed", range(3))
def test_random_stream_with_eviction_and_slot_reuse(seed: int) -> None:
    # Tiny resolved retention: resolved tickets are forgotten and slots reused constantly.
    run_stream(100 + seed, 1500, BacklogConfig(resolved_retention=3), checkpoint_at=900)


def test_random_stream_with_heap_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.metrics.backlog.state as state_module
    import services.metrics.backlog.transitions as transitions_module

    # Compact the heaps (transitions) and the resolved FIFO (state) all the time.
    for module in (state_module, transitions_module):
        monkeypatch.setattr(module, "COMPACT_SLACK", 0)
    run_stream(7, 800, BacklogConfig(), checkpoint_at=None)
