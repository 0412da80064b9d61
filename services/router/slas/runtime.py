"""What the router's lifespan starts for SLAs, load and write-back, in one place.

:func:`start_sla_runtime` loads the live SLA configuration and starts its watcher, the timer
scanner and the write-back sender as background tasks; :meth:`SlaRuntime.stop` ends them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.assignment import DEFAULT_PRIORITY_WEIGHTS, LoadConfig
from services.router.escalation.scanner import EscalationScanner, ScannerOptions
from services.router.routing.handler import HandlerOptions, router_outbox
from services.router.sla import DEFAULT_MATRIX, PriorityMatrix
from services.router.slas.live import LiveSla
from services.router.writeback.groups import GroupDirectory
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.db.outbox import OutboxWriter
from shared.events import TicketStatus
from shared.runtime import stop_tasks
from shared.settings import RouterSettings


def load_config(settings: RouterSettings) -> LoadConfig:
    statuses = frozenset(
        TicketStatus(s.strip()) for s in settings.router_load_counted_statuses.split(",") if s.strip()
    )
    return LoadConfig(dict(DEFAULT_PRIORITY_WEIGHTS), statuses, settings.router_load_weighted)


def priority_matrix(settings: RouterSettings) -> PriorityMatrix:
    if not settings.router_priority_matrix:
        return DEFAULT_MATRIX
    return PriorityMatrix.model_validate({"cells": json.loads(settings.router_priority_matrix)})


@dataclass
class SlaRuntime:
    sla: LiveSla
    handler_options: HandlerOptions
    matrix: PriorityMatrix
    outbox: OutboxWriter  # the escalation scanner's, for the batch handler to share
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    client: httpx.AsyncClient | None = None

    async def stop(self) -> None:
        await stop_tasks(self.tasks)  # bounded: one that lost its cancellation is left behind
        if self.client is not None:
            await self.client.aclose()


async def start_sla_runtime(
    settings: RouterSettings, sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer
) -> SlaRuntime:
    live = LiveSla(sessions)
    await live.refresh()
    groups = GroupDirectory(sessions)
    await groups.refresh()
    load = load_config(settings)
    options = HandlerOptions(
        load=load,
        overflow_team=settings.router_overflow_team,
        sla=lambda: live.config,
        writeback=True,
        team_of_group=groups.team_of,
    )
    runtime = SlaRuntime(live, options, priority_matrix(settings), router_outbox(sessions, producer))
    scanner = EscalationScanner(
        sessions,
        producer,
        settings.topic_routing_events,
        lambda: live.config,
        options=ScannerOptions(load=load, overflow_team=settings.router_overflow_team, writeback=True),
        outbox=runtime.outbox,
        sla_refresh=live.refresh,
    )
    runtime.client = httpx.AsyncClient(follow_redirects=False)
    sender = WritebackSender(
        sessions,
        runtime.client,
        SenderConfig(
            max_attempts=settings.router_writeback_max_attempts,
            backoff_base_s=settings.router_writeback_backoff_base_s,
            backoff_cap_s=settings.router_writeback_backoff_max_s,
            timeout_s=settings.router_writeback_timeout_s,
        ),
    )
    runtime.tasks = [
        asyncio.create_task(live.watch(settings.router_sla_poll_s), name="sla-watch"),
        asyncio.create_task(groups.watch(settings.router_sla_poll_s), name="writeback-groups-watch"),
        asyncio.create_task(scanner.run_forever(settings.router_timer_poll_s), name="sla-timers"),
        asyncio.create_task(sender.run_forever(settings.router_writeback_poll_s), name="writeback-sender"),
    ]
    return runtime
