"""Hypothesis state machine: random event streams of a few tickets against a small reference model of
the counters (routed, resolved, reopened, escalated, breaches, received), the histograms' counts and
the open-ticket gauges, read back from the exposition. Events at one instant, late events (their
time before the clock), tickets created ahead of the clock or long ago, redeliveries, re-published
older decisions, ticket events read before or after the decisions and checkpoints in the middle.
test_state_random covers the flows; this covers what it does not compare."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.metrics.backlog import BacklogConfig, BacklogState
from shared.events import EventEnvelope, EventType, TicketSnapshot, TicketState, ticket_event

from .helpers import at, envelope, make_state, scrape

H = 3600
TEAMS = (None, "billing", "tech", "sales")
PRIOS = ("P1", "P2", "P3", "P4")
KEYS = tuple(f"zendesk:{i}" for i in range(4))
EDGES = (3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600, 168 * 3600)


@dataclass
class Ticket:
    state: TicketState
    created: int  # seconds, as the fields of the state below
    fr_due: int | None
    res_due: int | None
    res_warn: int | None
    responded: int | None
    paused: bool
    open: bool
    fr_seen: bool = False
    routed_once: bool = False
    pending: dict[str, int] = field(default_factory=dict)  # kind -> deadline past on arrival
    last_fr: int | None = None  # the last deadlines set (a withdrawn one restored is the same)
    last_res: int | None = None


class Machine(RuleBasedStateMachine):
    config = BacklogConfig()

    def __init__(self) -> None:
        super().__init__()
        self.backlog = BacklogState(self.config)
        self.labels: dict[str, str] = {}  # team name -> its label: itself, or "other" past the cap
        self.clock = 30 * 24 * H  # seconds since helpers.BASE
        self.backlog.advance_clock(at(self.clock))
        self.tickets: dict[str, Ticket] = {}
        self.revisions: dict[str, int] = {}
        self.breached: set[tuple[str, str, int]] = set()  # (key, kind, deadline): once each
        self.counts: Counter[tuple[str, ...]] = Counter()
        self.received: set[str] = set()
        self.sent: list[tuple[EventEnvelope, int]] = []
        self.ticket_events: list[EventEnvelope] = []

    # ------------------------------------------------------------------ the model's clock
    def _move(self, to: int) -> None:
        if to <= self.clock:
            return
        self.clock = to
        for key, t in self.tickets.items():
            for kind, due in list(t.pending.items()):  # left pending, not settled by a next state
                self._breach(key, kind, due, t.state.team)
            t.pending.clear()
            if not t.open or t.paused:
                continue
            if t.res_due is not None and to > t.res_due:
                self._breach(key, "resolution", t.res_due, t.state.team)
            if t.fr_due is not None and t.responded is None and to > t.fr_due:
                self._breach(key, "first_response", t.fr_due, t.state.team)

    def _breach(self, key: str, kind: str, due: int, team: str | None) -> None:
        if (key, kind, due) not in self.breached:
            self.breached.add((key, kind, due))
            self.counts[("breach", self._team(team), kind)] += 1

    def _team(self, name: str | None) -> str:
        if name is None:
            return "triage"
        if name not in self.labels:  # the first state naming it interns it, in that order
            own = len(self.labels) - list(self.labels.values()).count("other") < self.config.max_teams - 2
            self.labels[name] = name if own else "other"
        return self.labels[name]

    # ------------------------------------------------------------------ the model's events
    def _decide(self, new: Ticket, etype: EventType, when: int) -> None:
        key = new.state.ticket_key
        self._move(when)
        old = self.tickets.get(key)
        if old is not None and new.state.revision < old.state.revision:
            return
        team, prev_team = self._team(new.state.team), None if old is None else self._team(old.state.team)
        res_limit, fr_limit, fr_pending = new.res_due, new.fr_due, None
        if old is not None:
            if "resolution" in old.pending:
                due = old.pending["resolution"]
                if not new.open and new.res_due in (None, due):
                    res_limit = due
                else:
                    self._breach(key, "resolution", due, old.state.team)
            if "first_response" in old.pending:
                due = old.pending["first_response"]
                if (new.responded is not None or not new.open) and new.fr_due in (None, due):
                    fr_limit = fr_pending = due
                else:
                    self._breach(key, "first_response", due, old.state.team)
            new.fr_seen, new.routed_once = old.fr_seen, old.routed_once
            new.last_fr = old.last_fr if new.fr_due is None else new.fr_due
            new.last_res = old.last_res if new.res_due is None else new.res_due
        else:
            new.last_fr, new.last_res = new.fr_due, new.res_due
        fr_active, res_active = (
            new.state.sla.first_response_due is not None,
            new.state.sla.resolution_due is not None,
        )
        if new.open and new.state.team is not None and team != prev_team:
            self.counts[("routed", team)] += 1
        if new.state.team is not None and not new.routed_once:
            new.routed_once = True
            if new.state.routed_at is not None:
                self.counts[("ttr",)] += 1
        if new.responded is not None and not new.fr_seen:
            new.fr_seen = True
            self.counts[("fr", team)] += 1
            if fr_limit is not None and new.responded > fr_limit:
                self._breach(key, "first_response", fr_limit, new.state.team)
        if not new.open and (old is None or old.open):
            self.counts[("resolved", team)] += 1
            self.counts[("res", team, new.state.priority.value)] += 1
            end = (
                when if new.state.resolved_at is None else round(new.state.resolved_at.timestamp()) - _base()
            )
            if res_limit is not None and end > res_limit:
                self._breach(key, "resolution", res_limit, new.state.team)
            if fr_pending is not None and new.responded is None and end > fr_pending:
                self._breach(key, "first_response", fr_pending, new.state.team)
        reopened = (old is not None and not old.open) or (old is None and etype == EventType.TICKET_REOPENED)
        if new.open and reopened:
            self.counts[("reopened", team)] += 1
        raised = old is not None and PRIOS.index(new.state.priority) < PRIOS.index(old.state.priority)
        if etype == EventType.TICKET_ESCALATED or raised:
            self.counts[("escalated", team)] += 1
        # A deadline past on arrival: pending until the clock moves (or the next state settles it).
        armed = {
            "resolution": new.res_due if res_active else None,
            "first_response": new.fr_due if fr_active and new.responded is None else None,
        }
        for kind, deadline in armed.items():
            if new.open and not new.paused and deadline is not None and self.clock > deadline:
                new.pending.update({} if (key, kind, deadline) in self.breached else {kind: deadline})
        self.tickets[key] = new

    def _send(self, state: TicketState, etype: EventType, when: int, **fields: int | bool | None) -> None:
        env = envelope(state, when, etype)
        self.sent.append((env, when))
        ticket = Ticket(state=state, open=not state.status.is_resolved, **fields)  # type: ignore[arg-type]
        self.backlog.apply(env, at(when))
        self._decide(ticket, etype, when)

    # ------------------------------------------------------------------ rules
    @rule(
        key=st.sampled_from(KEYS),
        step=st.sampled_from([0, 0, 1, 59, 600, H, 5 * H, 30 * H]),
        late=st.integers(0, 2 * H),
        team=st.sampled_from(TEAMS),
        prio=st.sampled_from(PRIOS),
        status=st.sampled_from(["new", "open", "pending", "on_hold", "solved", "closed"]),
        created=st.sampled_from([-400 * H, -30 * H, -2 * H, -1, 0, 1, 2 * H]),
        fr=st.one_of(st.none(), st.sampled_from([-H, 0, 1, 1800, 4 * H, 30 * H])),
        res=st.one_of(st.none(), st.sampled_from([-5 * H, 0, 1, 8 * H, 50 * H])),
        warn=st.one_of(st.none(), st.sampled_from([-H, 0, 2 * H])),
        respond=st.sampled_from([None, None, -60, 0]),
        etype=st.sampled_from(
            [
                EventType.TICKET_ROUTED,
                EventType.TICKET_STATE_CHANGED,
                EventType.TICKET_ESCALATED,
                EventType.TICKET_REOPENED,
                EventType.TICKET_RESOLVED,
                EventType.SLA_BREACHED,
            ]
        ),
        keep=st.booleans(),
    )
    def decision(
        self,
        key: str,
        step: int,
        late: int,
        team: str | None,
        prio: str,
        status: str,
        created: int,
        fr: int | None,
        res: int | None,
        warn: int | None,
        respond: int | None,
        etype: EventType,
        keep: bool,
    ) -> None:
        """The router's next state of ``key`` (its first if new), at the clock plus ``step``, or
        ``late`` before the clock when ``step`` is 0 (a late event moves no clock)."""
        when = self.clock + step if step else self.clock - late
        old = self.tickets.get(key)
        rev = self.revisions[key] = self.revisions.get(key, 0) + 1
        base = old.created if old is not None and keep else when + created
        paused = status in ("pending", "on_hold")
        resolved = status in ("solved", "closed")
        responded = (
            old.responded
            if old is not None and old.responded is not None
            else (None if respond is None else when + respond)
        )
        # keep: the ticket's last deadlines (withdrawn meanwhile or not), else new ones.
        fr_due = None if fr is None or resolved else base + fr if old is None or not keep else old.last_fr
        res_due = None if res is None or resolved else base + res if old is None or not keep else old.last_res
        res_warn = None if res_due is None or warn is None else res_due + warn
        state = make_state(
            key,
            base,
            team=team,
            priority=prio,
            status=status,
            routed=None if team is None else when,
            fr_due=fr_due,
            res_due=res_due,
            res_warn=res_warn,
            responded=responded,
            resolved=when if resolved else None,
            paused=paused,
        )
        state.revision = rev
        self._send(
            state,
            etype,
            when,
            created=base,
            fr_due=fr_due,
            res_due=res_due,
            res_warn=res_warn,
            responded=responded,
            paused=paused,
        )

    @rule(step=st.sampled_from([1, 59, 600, H, 8 * H, 100 * H]))
    def tick(self, step: int) -> None:
        self.backlog.advance_clock(at(self.clock + step))
        self._move(self.clock + step)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        env, _ = data.draw(st.sampled_from(self.sent))
        self.backlog.apply(env, at(self.clock))  # the same event id: a no-op

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), step=st.sampled_from([0, 1, 600]))
    def republish_older(self, data: st.DataObject, step: int) -> None:
        """An older decision again under a new event id: its revision makes it a no-op."""
        env, _ = data.draw(st.sampled_from(self.sent))
        old = TicketState.model_validate(env.payload["state"])
        if old.revision >= self.revisions[old.ticket_key]:
            return
        self.backlog.apply(envelope(old, self.clock + step), at(self.clock + step))
        self._move(self.clock + step)

    @rule(key=st.sampled_from((*KEYS, "zendesk:never-routed")), offset=st.integers(-100 * H, 100 * H))
    def ticket_topic(self, key: str, offset: int) -> None:
        """A ticket event, read before or after the decisions (its own topic, its own pace)."""
        env = ticket_event(
            EventType.TICKET_UPDATED,
            "zendesk",
            TicketSnapshot(external_id=key.split(":")[1]),
            at(self.clock + offset),
        )
        self.ticket_events.append(env)
        self.backlog.apply(env, at(self.clock + offset))
        self.received.add(key)

    @precondition(lambda self: bool(self.ticket_events))
    @rule(data=st.data())
    def ticket_topic_redelivered(self, data: st.DataObject) -> None:
        self.backlog.apply(data.draw(st.sampled_from(self.ticket_events)), at(self.clock))

    @rule()
    def checkpoint_and_restore(self) -> None:
        before = scrape(self.backlog)
        self.backlog = BacklogState.from_checkpoint(self.backlog.to_checkpoint())
        assert self.backlog.config == self.config
        assert scrape(self.backlog) == before

    # ------------------------------------------------------------------ comparison
    @invariant()
    def exposition_matches_the_model(self) -> None:
        got = scrape(self.backlog)
        assert all(not math.isnan(v) for v in got.values())
        assert all(not math.isinf(v) for (name, _), v in got.items() if "time_to_clear" not in name)
        exp: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        for k, v in self.counts.items():
            if k[0] == "breach":
                exp[("sla_breaches_total", (("kind", k[2]), ("team", k[1])))] += v
            elif k[0] == "ttr":
                exp[("ticket_time_to_route_seconds_count", ())] += v
            elif k[0] == "fr":
                exp[("ticket_first_response_seconds_count", (("team", k[1]),))] += v
            elif k[0] == "res":
                exp[("ticket_resolution_seconds_count", (("priority", k[2]), ("team", k[1])))] += v
            else:
                exp[(f"tickets_{k[0]}_total", (("team", k[1]),))] += v
        if self.received:
            exp[("tickets_received_total", (("source", "zendesk"),))] = len(self.received)
        now, oldest = self.clock, dict[str, int]()
        for t in self.tickets.values():
            if not t.open:
                continue
            team, prio = self._team(t.state.team), t.state.priority.value
            exp[("ticket_backlog_open", (("priority", prio), ("team", team)))] += 1
            exp[("ticket_open_by_status", (("status", t.state.status.value), ("team", team)))] += 1
            exp[("ticket_open_age_gcount", (("team", team),))] += 1
            exp[("ticket_open_age_gsum", (("team", team),))] += max(0, now - t.created)
            for edge in (*EDGES, math.inf):
                if max(0, now - t.created) <= edge:
                    le = "+Inf" if math.isinf(edge) else repr(float(edge))
                    exp[("ticket_open_age_bucket", (("le", le), ("team", team)))] += 1
            oldest[team] = min(oldest.get(team, t.created), t.created)
            if t.res_due is not None and not t.paused:
                warn_ms = (
                    min(t.res_warn, t.res_due) * 1000
                    if t.res_warn is not None
                    else t.created * 1000 + math.ceil(0.75 * (t.res_due - t.created) * 1000)
                )
                if now > t.res_due:
                    exp[("ticket_backlog_overdue", (("priority", prio), ("team", team)))] += 1
                elif now * 1000 >= min(warn_ms, t.res_due * 1000):
                    exp[("ticket_sla_at_risk", (("priority", prio), ("team", team)))] += 1
            if team == "triage":
                exp[("ticket_triage_open", ())] += 1
        for team, created in oldest.items():
            exp[("ticket_oldest_open_age_seconds", (("team", team),))] = max(0, now - created)
        compared = {name for name, _ in exp} | {
            "sla_breaches_total",
            "tickets_routed_total",
            "tickets_resolved_total",
            "tickets_reopened_total",
            "tickets_escalated_total",
            "ticket_backlog_open",
            "ticket_backlog_overdue",
            "ticket_sla_at_risk",
            "ticket_open_age_gsum",
            "ticket_open_age_gcount",
            "ticket_oldest_open_age_seconds",
            "ticket_first_response_seconds_count",
            "ticket_resolution_seconds_count",
            "ticket_time_to_route_seconds_count",
            "tickets_received_total",
            "ticket_open_by_status",
            "ticket_open_age_bucket",
            "ticket_triage_open",
        }
        for key in set(got) | set(exp):
            if key[0] in compared:
                assert got.get(key, 0.0) == exp.get(key, 0.0), (key, got.get(key), exp.get(key))


def _base() -> int:
    return round(at(0).timestamp())


class CappedMachine(Machine):
    """Two team labels besides triage and other: the third team named is counted as other."""

    config = BacklogConfig(max_teams=4)


Machine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
CappedMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestBacklogStateMachine = Machine.TestCase
TestCappedBacklogStateMachine = CappedMachine.TestCase
