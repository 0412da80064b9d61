"""Which routing events become write-back deliveries, and queueing them in the same transaction.

A delivery row is written with the decision that caused it, so a notification is never lost
nor sent for a decision that rolled back; the sender delivers it later, with retries. A disabled
target's deliveries are queued too: the sender leaves them until the target is enabled again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

import orjson
from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.writeback.models import WritebackDelivery, WritebackTarget
from shared.events import EventEnvelope, EventType, RoutingPayload, utc_now

WRITEBACK_KINDS = ("assignment", "priority_change", "escalation", "sla_warning", "sla_breach")

# The targets of the sources (``sources``) and names (``names``) a transaction's notifications go
# to: the columns a delivery needs, read as rows (Core). Built once: a router batch runs it, and
# building it and its cache key, and the ORM's execution path, cost more than running it.
_TARGET_TABLE = cast(Table, WritebackTarget.__table__)
_TARGETS = select(
    _TARGET_TABLE.c.id,
    _TARGET_TABLE.c.name,
    _TARGET_TABLE.c.source,
    _TARGET_TABLE.c.connector,
    _TARGET_TABLE.c.event_kinds,
).where(
    _TARGET_TABLE.c.source.in_(bindparam("sources", expanding=True))
    | _TARGET_TABLE.c.name.in_(bindparam("names", expanding=True))
)


def writeback_kind(kind: EventType, payload: RoutingPayload) -> str | None:
    """The write-back kind of a routing event, or None when the source needs not hear of it."""
    if kind == EventType.TICKET_ROUTED:
        return "assignment"
    if kind == EventType.TICKET_ESCALATED:
        return "escalation"
    if kind == EventType.SLA_WARNING:
        return "sla_warning"
    if kind == EventType.SLA_BREACHED:
        return "sla_breach"
    if kind == EventType.TICKET_STATE_CHANGED and payload.previous_priority not in (
        None,
        payload.state.priority,
    ):
        return "priority_change"
    return None


def body_for(kind: str, envelope: EventEnvelope, payload: RoutingPayload, external_id: str | None) -> str:
    document = {
        "event_id": str(envelope.event_id),
        "kind": kind,
        "event_type": envelope.type.value,
        "ticket_key": envelope.ticket_key,
        "source": envelope.source,
        "external_id": external_id,
        "occurred_at": envelope.occurred_at.isoformat(),
        "team": payload.state.team,
        "previous_team": payload.previous_team,
        "priority": payload.state.priority.value,
        "previous_priority": None if payload.previous_priority is None else payload.previous_priority.value,
        "status": payload.state.status.value,
        "sla": payload.state.sla.model_dump(mode="json"),
        "reasons": payload.reasons,
    }
    return orjson.dumps(document).decode()


class WritebackQueue:
    """Collects a transaction's notifications and inserts their delivery rows in one go."""

    def __init__(self) -> None:
        self.items: list[tuple[str, EventEnvelope, RoutingPayload, str | None, tuple[str, ...]]] = []

    def add(
        self,
        kind: EventType,
        envelope: EventEnvelope,
        payload: RoutingPayload,
        external_id: str | None,
        named: Iterable[str] = (),
    ) -> None:
        """Queue ``envelope`` for the source's targets (by kind) and any ``named`` targets."""
        wb_kind = writeback_kind(kind, payload)
        names = tuple(named)
        if wb_kind is not None or names:
            self.items.append((wb_kind or "escalation", envelope, payload, external_id, names))

    async def flush(self, session: AsyncSession, now: datetime | None = None) -> int:
        if not self.items:
            return 0
        sources = {item[1].source for item in self.items}
        names = {n for item in self.items for n in item[4]}
        found = await session.execute(_TARGETS, {"sources": list(sources), "names": list(names)})
        targets = found.all()
        now = now or utc_now()
        added = 0
        for wb_kind, envelope, payload, external_id, named in self.items:
            body: str | None = None  # built once, and only for a ticket some target wants
            for target in targets:
                own = target.source == envelope.source
                if not own and target.connector != "webhook":
                    continue  # a helpdesk's API addresses its own tickets only, whoever names it
                by_kind = own and (not target.event_kinds or wb_kind in target.event_kinds)
                if by_kind or target.name in named:
                    if body is None:
                        body = body_for(wb_kind, envelope, payload, external_id)
                    session.add(
                        WritebackDelivery(
                            target_id=target.id,
                            event_id=str(envelope.event_id),
                            kind=wb_kind,
                            ticket_key=envelope.ticket_key,
                            body=body,
                            status="pending",
                            attempts=0,
                            next_attempt_at=now,
                            created_at=now,
                        )
                    )
                    added += 1
        self.items.clear()
        return added
