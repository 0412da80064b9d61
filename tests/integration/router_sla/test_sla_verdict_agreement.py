"""The router and the metrics service must agree on which SLA targets a ticket breached.

The router decides with each event's own instant: an agent reply or a solve that happened before
the deadline meets it, however late its webhook arrives, unless the escalation scanner fired the
breach first (that breach stands). The live metrics service used to count ``sla_breaches_total``
when its own clock passed the deadline while the ticket was open: a reply or solve made in time,
delivered after the deadline and routed before the scanner's next scan, was met to the router and
a breach to the metrics (a counter cannot go down). The counter now counts the router's verdicts
(``state.sla.*_breached``); the overdue gauge still follows the clock.

Real handler and scanner (fake clock, real database and broker); the routing events they publish
are applied to a live metrics shard at the instant the router published them, and the shard is
scraped in between, as Prometheus does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from services.metrics.backlog import BacklogState
from services.router.escalation.models import FiredTimer
from shared.events import Comment, EventEnvelope, EventType, TicketStatus
from tests.integration.router_sla.helpers import config, event, new_id, sla_rig, utc
from tests.kafka_reading import read_records
from tests.unit.backlog.helpers import scrape

# Monday 09:00 in Berlin. P3 on the office calendar: first response due 11:00 Berlin (09:00 UTC),
# warning at 10:30 (08:30 UTC); resolution due 17:00 Berlin (15:00 UTC), warning 15:00 (13:00 UTC).
START = utc(2026, 6, 8, 7, 0)
FR_DUE, FR_WARN = utc(2026, 6, 8, 9, 0), utc(2026, 6, 8, 8, 30)
RES_DUE, RES_WARN = utc(2026, 6, 8, 15, 0), utc(2026, 6, 8, 13, 0)
S, MINUTE = timedelta(seconds=1), timedelta(minutes=1)
OPEN, COMMENTED, STATUS_CHANGED = (
    TicketStatus.OPEN,
    EventType.TICKET_COMMENTED,
    EventType.TICKET_STATUS_CHANGED,
)
REPLY = Comment(body="on it", from_agent=True)


def breaches(metrics: BacklogState) -> dict[str, float]:
    """``sla_breaches_total`` by kind, as scraped (kinds at 0 left out)."""
    found: dict[str, float] = {}
    for (name, labels), value in scrape(metrics).items():
        if name == "sla_breaches_total" and value:
            found[dict(labels)["kind"]] = found.get(dict(labels)["kind"], 0.0) + value
    return found


def overdue(metrics: BacklogState) -> float:
    return sum(v for (name, _), v in scrape(metrics).items() if name == "ticket_backlog_overdue")


async def router_breaches(rig, key: str) -> dict[str, float]:
    """The router's verdicts: the breach timers fired for the ticket, by target (ids are
    ``ticket:target:kind:cycle``)."""
    async with rig.sessions() as session:
        query = select(FiredTimer.timer_id).where(FiredTimer.ticket_key == key, FiredTimer.kind == "breach")
        found: dict[str, float] = {}
        for timer_id in (await session.scalars(query)).all():
            target = timer_id.rsplit(":", 3)[1]
            found[target] = found.get(target, 0.0) + 1
        return found


class Disagreement(AssertionError):
    """The metrics' count is not the router's verdicts."""


class Pipeline:
    """The rig's routing topic read into a live metrics shard, each event at its publishing instant."""

    def __init__(self, rig, settings_kwargs: dict[str, object]) -> None:
        self.rig, self.bootstrap = rig, str(settings_kwargs["kafka_bootstrap_servers"])
        self.external_id = new_id()
        self.key = f"api:{self.external_id}"
        self.metrics = BacklogState()
        self.read: set[tuple[int, int]] = set()  # (partition, offset) of the records read so far
        self.events: list[EventEnvelope] = []  # this ticket's (the scanner also fires earlier tests')

    async def deliver(self, at_least: int) -> None:
        """Apply what the router published for the ticket since the last call, ``at_least`` events
        (routing events' ``occurred_at`` is the router's clock when it decided: a live metrics
        service reads them then)."""
        fresh: list[EventEnvelope] = []
        for _ in range(20):
            records = await read_records(self.bootstrap, self.rig.topic, len(self.read), idle_s=0.5)
            new = [r for r in records if (r.partition, r.offset) not in self.read]
            self.read |= {(r.partition, r.offset) for r in new}
            envelopes = [EventEnvelope.from_bytes(r.value) for r in new]
            fresh += [env for env in envelopes if env.ticket_key == self.key]
            if len(fresh) >= at_least:
                break
        assert len(fresh) >= at_least, f"{len(fresh)} events of {self.key} published, {at_least} expected"
        for env in sorted(fresh, key=lambda e: (e.occurred_at, e.routing().state.revision)):
            self.metrics.apply(env, env.occurred_at)
        self.events += fresh

    def scrape_at(self, now: datetime) -> None:
        self.metrics.advance_clock(now)  # a scrape of a caught-up shard moves its clock to now
        scrape(self.metrics)

    async def scan(self, now: datetime, fires: int) -> None:
        self.rig.clock.now = now
        await self.rig.scanner().scan_once()
        await self.deliver(fires)

    async def route(
        self,
        now: datetime,
        happened: datetime,
        status: TicketStatus = TicketStatus.NEW,
        kind: EventType = EventType.TICKET_CREATED,
        comment: Comment | None = None,
    ) -> None:
        """A ticket event that happened at ``happened``, reaching the router at ``now``."""
        self.rig.clock.now = now
        await self.rig.handler([event(self.external_id, happened, status, kind, comment=comment)])
        await self.deliver(1)

    async def agree(self) -> None:
        counted, verdicts = breaches(self.metrics), await router_breaches(self.rig, self.key)
        if counted != verdicts:
            raise Disagreement(f"sla_breaches_total {counted}, the router's breaches {verdicts}")


async def test_a_reply_before_its_deadline_the_scanner_breached_first_both_say_breached(
    sessions, settings_kwargs
):
    """Control: the scanner fired the breach before the late reply was routed; the breach stands."""
    async with sla_rig(sessions, settings_kwargs, config(), START) as rig:
        flow = Pipeline(rig, settings_kwargs)
        await flow.route(START, START)
        await flow.scan(FR_WARN, fires=1)
        await flow.scan(FR_DUE + S, fires=1)  # the reply of 10:50 Berlin is still on its way
        await flow.route(FR_DUE + 30 * S, FR_DUE - 10 * MINUTE, OPEN, COMMENTED, REPLY)
        flow.scrape_at(FR_DUE + 60 * S)
        assert await router_breaches(rig, flow.key) == {"first_response": 1}
        assert flow.events[-1].routing().state.sla.breached is True
        await flow.agree()


async def test_a_reply_before_its_deadline_delivered_after_it_is_met_on_both_sides(sessions, settings_kwargs):
    async with sla_rig(sessions, settings_kwargs, config(), START) as rig:
        flow = Pipeline(rig, settings_kwargs)
        await flow.route(START, START)
        await flow.scan(FR_WARN, fires=1)
        flow.scrape_at(FR_DUE + 10 * S)
        # Replied at 10:50 Berlin; the webhook arrives 30 s past the deadline, before the next scan.
        await flow.route(FR_DUE + 30 * S, FR_DUE - 10 * MINUTE, OPEN, COMMENTED, REPLY)
        await flow.scan(FR_DUE + 60 * S, fires=0)  # nothing to fire: the reply met the target
        flow.scrape_at(FR_DUE + 90 * S)
        assert await router_breaches(rig, flow.key) == {}
        assert flow.events[-1].routing().state.sla.breached is False
        await flow.agree()


async def test_a_solve_before_its_deadline_delivered_after_it_is_met_on_both_sides(sessions, settings_kwargs):
    async with sla_rig(sessions, settings_kwargs, config(), START) as rig:
        flow = Pipeline(rig, settings_kwargs)
        await flow.route(START, START)
        await flow.route(START + MINUTE, START + MINUTE, OPEN, COMMENTED, REPLY)
        await flow.scan(RES_WARN, fires=1)
        flow.scrape_at(RES_DUE + 10 * S)
        assert overdue(flow.metrics) == 1  # the live gauge follows the clock, and goes down at the solve
        # Solved at 16:50 Berlin; the webhook arrives 30 s past the deadline, before the next scan.
        await flow.route(RES_DUE + 30 * S, RES_DUE - 10 * MINUTE, TicketStatus.SOLVED, STATUS_CHANGED)
        await flow.scan(RES_DUE + 60 * S, fires=0)
        flow.scrape_at(RES_DUE + 90 * S)
        assert overdue(flow.metrics) == 0
        assert await router_breaches(rig, flow.key) == {}
        assert flow.events[-1].routing().state.sla.breached is False
        await flow.agree()


async def test_a_reply_after_its_deadline_routed_before_the_scan_is_one_breach_on_both_sides(
    sessions, settings_kwargs
):
    """Replied late, and routed before the scanner fired: the reply's state says breached, and the
    breach the scanner then fires for it (owed) is the same one."""
    async with sla_rig(sessions, settings_kwargs, config(), START) as rig:
        flow = Pipeline(rig, settings_kwargs)
        await flow.route(START, START)
        await flow.scan(FR_WARN, fires=1)
        await flow.route(FR_DUE + 30 * S, FR_DUE + 20 * S, OPEN, COMMENTED, REPLY)
        assert flow.events[-1].routing().state.sla.first_response_breached is True
        assert breaches(flow.metrics) == {"first_response": 1}
        await flow.scan(FR_DUE + 60 * S, fires=1)  # the owed sla.breached
        assert flow.events[-1].type == EventType.SLA_BREACHED
        flow.scrape_at(FR_DUE + 90 * S)
        assert await router_breaches(rig, flow.key) == {"first_response": 1}
        await flow.agree()
