"""``GET /v1/tickets/{key}`` shows the SLA state the router emitted for the ticket, warning
instants included, though the stored row leaves them out (``RECOMPUTED_SLA_FIELDS``).

Real handler, database and broker, with a fake clock; the ticket is paused over a night on a
business-hours calendar, so the warning instants are nothing a reader could work out from the
stored due instants.
"""

from __future__ import annotations

import pytest

from services.router.models import RouterTicket
from services.router.sla import ALWAYS_OPEN
from services.router.slas import service
from services.router.slas.models import SlaConfigVersion
from services.router.slas.schemas import StoredPolicy
from services.router.slas.tracking import SlaConfig
from services.router.tickets.endpoints import live_calendar, router
from shared.auth import Role
from shared.events import EventEnvelope, EventType, SlaState, TicketStatus
from tests.integration.router_sla.helpers import OFFICE, api_client, event, new_id, sla_rig, utc
from tests.kafka_reading import read_records

START = utc(2026, 6, 8, 7, 0)  # Monday 09:00 Berlin


async def emitted_sla(settings_kwargs: dict[str, object], topic: str, key: str, expected: int) -> SlaState:
    """The SLA state of the last routing event published for ``key``."""
    records = await read_records(str(settings_kwargs["kafka_bootstrap_servers"]), topic, expected=expected)
    events = [
        EventEnvelope.from_bytes(r.value) for r in records if r.value is not None and r.key == key.encode()
    ]
    assert len(events) == expected
    return events[-1].routing().state.sla


async def shown_sla(sessions, key: str) -> SlaState:
    async with await api_client(sessions, router, Role.VIEWER, "ticket viewer") as client:
        response = await client.get(f"/v1/tickets/{key}")
    assert response.status_code == 200, response.text
    return SlaState.model_validate(response.json()["sla"])


@pytest.mark.parametrize("stored_calendar", [True, False], ids=["business-hours", "always-open"])
async def test_ticket_shows_the_emitted_warning_instants(sessions, settings_kwargs, stored_calendar: bool):
    # A calendar of this test's own: the database is shared, and no policy is saved with it, so
    # nothing else's tickets change. Unsaved, the routers count every hour ("24x7" fallback).
    name = f"office-{new_id()[:8]}" if stored_calendar else ALWAYS_OPEN
    calendar = OFFICE.model_copy(update={"name": name})
    if stored_calendar:
        async with sessions() as session, session.begin():
            document = calendar.model_dump(mode="json")
            await service.save(session, "calendar", name, document, "tests", previous=None)
    policy = StoredPolicy.model_validate(
        {"name": "standard", "calendar": name, "targets": {"P3": {"first_response": 120, "resolution": 480}}}
    )
    cfg = SlaConfig(policies=[policy], calendars={name: calendar} if stored_calendar else {})
    async with sla_rig(sessions, settings_kwargs, cfg, START) as rig:
        key = await rig.create(START)
        ext = key.removeprefix("api:")
        paused, resumed = utc(2026, 6, 8, 8, 0), utc(2026, 6, 9, 7, 0)
        await rig.handler([event(ext, paused, TicketStatus.PENDING, EventType.TICKET_STATUS_CHANGED)])
        await rig.handler([event(ext, resumed, TicketStatus.OPEN, EventType.TICKET_STATUS_CHANGED)])
        emitted = await emitted_sla(settings_kwargs, rig.topic, key, expected=3)

    assert emitted.first_response_warning_at is not None and emitted.resolution_warning_at is not None
    if stored_calendar:  # 1 of 8 h used on Monday: the warning at 6 h comes 5 business hours on
        assert emitted.resolution_warning_at == utc(2026, 6, 9, 12, 0)
    shown = await shown_sla(sessions, key)
    assert shown.first_response_warning_at == emitted.first_response_warning_at
    assert shown.resolution_warning_at == emitted.resolution_warning_at
    assert shown == emitted


async def test_ticket_without_an_sla_clock_shows_the_stored_state(sessions, settings_kwargs):
    async with sla_rig(sessions, settings_kwargs, SlaConfig(), START) as rig:  # no policy applies
        key = await rig.create(START)
        emitted = await emitted_sla(settings_kwargs, rig.topic, key, expected=1)
    assert emitted == SlaState()
    assert await shown_sla(sessions, key) == emitted


async def test_an_unreadable_stored_sla_shows_none_rather_than_failing_the_read(sessions, settings_kwargs):
    async with sla_rig(sessions, settings_kwargs, SlaConfig(), START) as rig:
        key = await rig.create(START)
    async with sessions() as session, session.begin():
        row = await session.get(RouterTicket, key)
        assert row is not None
        row.sla = {"resolution_due": "next tuesday", "breached": "maybe"}  # edited by hand, say
    assert await shown_sla(sessions, key) == SlaState()


async def test_a_calendar_that_no_longer_validates_is_counted_as_the_routers_count_it(sessions):
    """The routers leave such a calendar out and count every hour on it (load_config); the view
    showed the stored state instead, without the warning instants the events carry."""
    name = f"office-{new_id()[:8]}"
    document = {**OFFICE.model_dump(mode="json"), "name": name, "timezone": "Mars/Olympus"}
    async with sessions() as session, session.begin():
        session.add(SlaConfigVersion(kind="calendar", name=name, version=1, document=document, author="v1"))
    async with sessions() as session:
        shown = await live_calendar(session, name)
        config = await service.load_config(session)
    assert shown == config.calendar(name) and shown.open_around_the_clock
    async with sessions() as session, session.begin():
        deleted = {"kind": "calendar", "name": name, "version": 2, "document": document, "deleted": True}
        session.add(SlaConfigVersion(**deleted, author="t"))
