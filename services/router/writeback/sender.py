"""The background sender: claims due deliveries, POSTs them signed, retries with backoff.

Claiming sets a lease (``next_attempt_at`` in the future) in a short transaction, with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several routers share the queue without sending a
delivery twice at once; the HTTP call happens outside any transaction. A delivery that fails
``max_attempts`` times is marked ``failed`` and listed by the API for a manual retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.load.store import take_write_lock
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from shared.db.dialect import is_postgres
from shared.events import utc_now
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Ticket-Router-Signature"
TIMESTAMP_HEADER = "X-Ticket-Router-Timestamp"
DELIVERIES = Counter(
    "router_writeback_deliveries_total", "Write-back delivery attempts, by outcome", ["outcome"]
)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, base_s: float, cap_s: float) -> timedelta:
    """Delay before attempt ``attempts + 1``: base, 2 x base, 4 x base ... capped."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** max(attempts - 1, 0)))


@dataclass(frozen=True)
class SenderConfig:
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0
    timeout_s: float = 10.0
    lease_s: float = 60.0
    batch: int = 50


class WritebackSender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        config: SenderConfig = SenderConfig(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.config = config
        self.clock = clock

    async def _claim(self) -> list[tuple[int, str, str, str]]:
        now = self.clock()
        async with self.sessions() as session, session.begin():
            await take_write_lock(session)
            query = (
                select(WritebackDelivery, WritebackTarget)
                .join(WritebackTarget, WritebackTarget.id == WritebackDelivery.target_id)
                .where(WritebackDelivery.status == "pending", WritebackDelivery.next_attempt_at <= now)
                .order_by(WritebackDelivery.next_attempt_at, WritebackDelivery.id)
                .limit(self.config.batch)
            )
            if is_postgres(session):
                query = query.with_for_update(of=WritebackDelivery, skip_locked=True)
            claimed = []
            for delivery, target in (await session.execute(query)).all():
                delivery.next_attempt_at = now + timedelta(seconds=self.config.lease_s)
                claimed.append((delivery.id, target.url, target.secret, delivery.body))
            return claimed

    async def _send(self, url: str, secret: str, body: str) -> str | None:
        raw = body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, raw),
            TIMESTAMP_HEADER: str(int(self.clock().timestamp())),
        }
        try:
            response = await self.client.post(
                url, content=raw, headers=headers, timeout=self.config.timeout_s
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    async def run_once(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        claimed = await self._claim()
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._send(url, secret, body) for _, url, secret, body in claimed))
        now = self.clock()
        async with self.sessions() as session, session.begin():
            for (delivery_id, *_), error in zip(claimed, results, strict=True):
                delivery = await session.get(WritebackDelivery, delivery_id)
                if delivery is None or delivery.status != "pending":
                    continue
                delivery.attempts += 1
                if error is None:
                    delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, None
                    DELIVERIES.labels("delivered").inc()
                    continue
                delivery.last_error = error
                if delivery.attempts >= self.config.max_attempts:
                    delivery.status = "failed"
                    DELIVERIES.labels("failed").inc()
                    log.warning("write-back delivery failed for good", extra={"delivery": delivery_id})
                else:
                    delivery.next_attempt_at = now + backoff(
                        delivery.attempts, self.config.backoff_base_s, self.config.backoff_cap_s
                    )
                    DELIVERIES.labels("retry").inc()
        return len(claimed)

    async def run_forever(self, poll_s: float) -> None:
        async def send_all_due() -> None:
            while await self.run_once():
                pass

        # The queue is durable: a failed pass is retried at the next period.
        await repeat_forever(send_all_due, poll_s, log, "write-back sender pass failed")
