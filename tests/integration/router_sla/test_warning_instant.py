"""The routing events carry the instant the timer scanner fires the resolution warning at, and the
metrics' at-risk gauge, fed those events as published, turns at that instant too.

Real handler, real scanner, real database and broker, with a fake clock; the ticket is paused over
a night on a business-hours calendar, so the instant is neither 75 % of created -> due on the wall
clock nor anything a consumer could work out from the event's other fields.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from services.metrics.backlog import BacklogState
from services.router.escalation.models import FiredTimer
from shared.events import EventEnvelope, EventType, TicketStatus
from tests.integration.router_sla.helpers import config, event, sla_rig, utc
from tests.kafka_reading import read_records


async def fired(sessions, key: str) -> set[str]:
    async with sessions() as session:
        return set(
            (await session.scalars(select(FiredTimer.timer_id).where(FiredTimer.ticket_key == key))).all()
        )


async def test_events_carry_the_scanners_warning_instant_and_metrics_follow_it(sessions, settings_kwargs):
    cfg = config()  # office hours Mon-Fri 09-17 Berlin; P3: 2 h first response, 8 h resolution
    start = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin
    # 1 h used on Monday, paused until Tuesday 09:00 Berlin: the warning (6 of 8 h) comes 5 h later.
    warn, due = utc(2026, 6, 9, 12, 0), utc(2026, 6, 9, 14, 0)
    async with sla_rig(sessions, settings_kwargs, cfg, start) as rig:
        clock, handler, topic = rig.clock, rig.handler, rig.topic
        key = await rig.create(start)
        ext = key.removeprefix("api:")
        await handler(
            [event(ext, utc(2026, 6, 8, 8, 0), TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)]
        )
        await handler([event(ext, utc(2026, 6, 9, 7, 0), TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)])

        # The database is shared with the other tests: their due timers fire too, so only this
        # ticket's timers and events are looked at.
        scanner = rig.scanner()
        clock.now = warn - timedelta(milliseconds=1)
        await scanner.scan_once()
        timers = {f"{key}:first_response:warning:0", f"{key}:first_response:breach:0"}
        assert await fired(sessions, key) == timers
        clock.now = warn
        await scanner.scan_once()
        assert await fired(sessions, key) == {*timers, f"{key}:resolution:warning:0"}

        records = await read_records(str(settings_kwargs["kafka_bootstrap_servers"]), topic, expected=6)
    events = [
        EventEnvelope.from_bytes(r.value) for r in records if r.value is not None and r.key == key.encode()
    ]
    assert [e.type for e in events] == [
        EventType.TICKET_ROUTED,
        EventType.TICKET_STATE_CHANGED,
        EventType.TICKET_STATE_CHANGED,
        EventType.SLA_WARNING,
        EventType.SLA_BREACHED,
        EventType.SLA_WARNING,
    ]
    states = [e.routing().state.sla for e in events]
    assert states[0].resolution_warning_at == utc(2026, 6, 8, 13, 0)  # before the pause
    assert states[1].paused and states[1].resolution_warning_at is None
    assert [s.resolution_warning_at for s in states[2:]] == [warn] * 4
    assert [s.resolution_due for s in states[2:]] == [due] * 4
    assert states[2].first_response_warning_at == utc(2026, 6, 9, 7, 30)  # 1.5 of 2 h
    # The timer that fired, and the deadline it warns of.
    assert f"warning at {warn.isoformat()}, due {due.isoformat()}" in events[-1].routing().reasons[0]

    metrics = BacklogState()
    for e in events[:3]:
        metrics.apply(e, e.occurred_at)

    def at_risk(now: datetime) -> int:
        metrics.advance_clock(now)
        return sum(metrics.snapshot().teams["access"].at_risk)

    assert at_risk(start + (due - start) * 0.75) == 0  # Tuesday 06:15 UTC by the wall clock
    assert at_risk(warn - timedelta(milliseconds=1)) == 0
    assert at_risk(warn) == 1
    assert at_risk(due) == 1  # at the deadline still at risk: overdue only past it
    assert at_risk(due + timedelta(milliseconds=1)) == 0
