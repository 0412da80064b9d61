"""Shared set-up for the SLA integration tests: a controllable clock, configs, a producer, an
admin API client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from services.router.escalation.scanner import EscalationScanner
from services.router.models import Team
from services.router.routing.handler import HandlerOptions, RoutingHandler
from services.router.routing.lifecycle import RouteResult
from services.router.sla import BusinessCalendar
from services.router.slas.schemas import StoredPolicy
from services.router.slas.tracking import SlaConfig
from shared.auth import KeyCache, Role, create_api_key
from shared.events import EventType, TicketSnapshot, TicketStatus, ticket_event
from shared.http.problems import install_problem_handlers
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings, RouterSettings


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    @classmethod
    def at_wall_clock(cls) -> Clock:
        """Started at the real time (whole seconds): for rows that the product also compares with
        the wall clock, as a retry does with the delivered retention; a fixed date falls out of
        that window some day after it."""
        return cls(datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def catch_up(self) -> None:
        """Move to the wall clock if it is ahead: what an endpoint stamped with the real time
        (a retry due "now") is then due under this clock too, whatever day the tests run on."""
        self.now = max(self.now, datetime.now(UTC))


OFFICE = BusinessCalendar(
    name="office",
    timezone="Europe/Berlin",
    weekly_hours={"mon-fri": ["09:00-17:00"]},
    holidays=["2026-12-25"],
)


def office_monday_after(instant: datetime) -> datetime:
    """09:00 Berlin (OFFICE's opening) on the first Monday after ``instant``'s day: for a ticket
    whose timers must still be ahead of the wall clock, whatever day the tests run on."""
    day = (instant + timedelta(days=1)).date()
    day += timedelta(days=-day.weekday() % 7)
    return datetime.combine(day, time(9), OFFICE.tz).astimezone(UTC)


def config(**policy: object) -> SlaConfig:
    doc = {
        "name": "standard",
        "calendar": "office",
        "targets": {
            "P3": {"first_response": 120, "resolution": 480},
            "P2": {"first_response": 60, "resolution": 240},
        },
        **policy,
    }
    return SlaConfig(policies=[StoredPolicy.model_validate(doc)], calendars={"office": OFFICE})


def route(snapshot: TicketSnapshot, source: str) -> RouteResult:
    return RouteResult(team="access", reasons=["test"])


def event(
    external_id: str,
    at: datetime,
    status: TicketStatus = TicketStatus.NEW,
    kind=EventType.TICKET_CREATED,
    **kw: object,
) -> ConsumedEvent:
    snapshot = TicketSnapshot(
        external_id=external_id, subject="s", status=status, created_at=at, updated_at=at, **kw
    )
    return ConsumedEvent(ticket_event(kind, "api", snapshot, occurred_at=at), "tickets", 0, 0)


def sla_handler(
    sessions: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    topic: str,
    clock: Callable[[], datetime],
    cfg: SlaConfig,
) -> RoutingHandler:
    """A routing handler that routes with :func:`route` and tracks SLAs under ``cfg``."""
    return RoutingHandler(sessions, producer, topic, lambda: route, clock, HandlerOptions(sla=lambda: cfg))


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class SlaRig:
    """A routing handler and escalation scanners under one config and one fake clock."""

    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    topic: str
    clock: Clock
    cfg: SlaConfig
    handler: RoutingHandler

    async def create(self, at: datetime) -> str:
        """Route a new ticket created at ``at``; its key."""
        ext = new_id()
        await self.handler([event(ext, at)])
        return f"api:{ext}"

    def scanner(self) -> EscalationScanner:
        return EscalationScanner(self.sessions, self.producer, self.topic, lambda: self.cfg, self.clock)


@asynccontextmanager
async def sla_rig(
    sessions: async_sessionmaker[AsyncSession],
    settings_kwargs: dict[str, object],
    cfg: SlaConfig,
    now: datetime,
) -> AsyncIterator[SlaRig]:
    clock = Clock(now)
    async with producer_for(settings_kwargs) as (producer, topic):
        handler = sla_handler(sessions, producer, topic, clock, cfg)
        yield SlaRig(sessions, producer, topic, clock, cfg, handler)


@asynccontextmanager
async def producer_for(settings_kwargs: dict[str, object]) -> AsyncIterator[tuple[AIOKafkaProducer, str]]:
    settings = CommonSettings(**settings_kwargs)  # type: ignore[arg-type]
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        yield producer, settings.topic_routing_events
    finally:
        await producer.stop()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def add_teams(session: AsyncSession, *names: str) -> None:
    """The teams ``names`` that do not exist yet (a write-back target's groups may map only teams)."""
    for name in names:
        if await session.get(Team, name) is None:
            session.add(Team(name=name))
    await session.flush()


async def api_client(
    sessions: async_sessionmaker[AsyncSession], router: APIRouter, role: Role, key_name: str
) -> httpx.AsyncClient:
    """A client of an app serving ``router`` alone, authenticated by a fresh key with ``role``."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.state.sessions = sessions
    app.state.keys = KeyCache(sessions)
    app.state.settings = RouterSettings()
    async with sessions() as session, session.begin():
        _, key = await create_api_key(session, key_name, role)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": f"Bearer {key}"},
    )


@asynccontextmanager
async def serving(app: ASGIApp, port: int) -> AsyncIterator[None]:
    """``app`` served by a real uvicorn on 127.0.0.1:``port`` for the duration of the block."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task
