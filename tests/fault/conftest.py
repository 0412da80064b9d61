"""Fault-suite fixtures: a broker of our own per test (we pause it), one database for the suite
(PostgreSQL when TEST_POSTGRES_URL is set, else SQLite), the services as real processes, and a
generator posting tickets continuously while we break things."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from services.router.models import RoutingDecision
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.kafka.embedded import EmbeddedBroker
from tests.conftest import POSTGRES_URL, _create_postgres_database, unique_topics
from tests.e2e.conftest import ensure_demo_live
from tests.e2e.stack import Stack


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """Not the session broker: fault tests pause and resume theirs."""
    embedded = EmbeddedBroker(log_path=tmp_path / "broker.log")
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture(scope="session")
def fault_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if POSTGRES_URL:
        url = asyncio.run(_create_postgres_database(POSTGRES_URL))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('faultdb') / 'fault.db'}"
    upgrade(url)
    asyncio.run(ensure_demo_live(url))  # the demo teams active and the demo rules live
    return url


@pytest.fixture
def fault_stack(own_broker: EmbeddedBroker, fault_database_url: str, tmp_path: Path) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap,
        "DATABASE_URL": fault_database_url,
        "TOPIC_PARTITIONS": "3",
        "ROUTER_GROUP_ID": f"router-{suffix}",
        "METRICS_GROUP_ID": f"metrics-{suffix}",
        "INTAKE_PUBLISH_TIMEOUT_S": "1",
        "INTAKE_OUTBOX_POLL_S": "0.5",
        "CONSUMER_RETRY_BACKOFF_MAX_S": "2",
        "LOG_LEVEL": "INFO",
        **{k.upper(): v for k, v in unique_topics().items()},
    }
    running = Stack(env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


class TicketLoad(threading.Thread):
    """Posts new tickets (unique external ids) at about ``rate`` per second until stopped.

    Every attempt ends in exactly one bucket: ``acked`` (2xx: intake promised to deliver it),
    ``refused`` (a definite answer that nothing was taken: connection refused, 4xx/5xx), or
    ``unknown`` (the connection broke mid-request: it may or may not have been taken)."""

    def __init__(self, stack: Stack, rate: float = 50.0) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.prefix = uuid.uuid4().hex[:10]
        self.interval = 1.0 / rate
        self.acked: dict[str, float] = {}  # key -> monotonic time of the 2xx
        self.refused: dict[str, str] = {}
        self.unknown: dict[str, str] = {}
        self.slowest_s = 0.0
        self._halt = threading.Event()

    def key(self, external_id: str) -> str:
        return f"api:{external_id}"

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=20) as client:
            while not self._halt.is_set():
                external_id = f"{self.prefix}-{n}"
                n += 1
                began = time.monotonic()
                try:
                    response = client.post(
                        self.stack.url("intake") + "/v1/tickets",
                        json={"external_id": external_id, "subject": "VPN down", "priority": "high"},
                        headers={"Authorization": f"Bearer {self.stack.intake_key}"},
                    )
                except httpx.ConnectError as exc:
                    self.refused[self.key(external_id)] = repr(exc)
                    time.sleep(0.05)  # intake is down: do not spin
                except httpx.HTTPError as exc:
                    self.unknown[self.key(external_id)] = repr(exc)
                else:
                    if 200 <= response.status_code < 300:
                        self.acked[self.key(external_id)] = time.monotonic()
                    else:
                        self.refused[self.key(external_id)] = f"{response.status_code}: {response.text[:200]}"
                self.slowest_s = max(self.slowest_s, time.monotonic() - began)
                self._halt.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        assert not self.is_alive(), "load generator did not stop"

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.acked.values() if start <= t <= end)


async def _routed(database_url: str, prefix: str) -> dict[str, int]:
    """ticket key -> number of ticket.routed decisions, for this test's tickets."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(RoutingDecision.ticket_key, func.count())
                .where(RoutingDecision.kind == "ticket.routed")
                .where(RoutingDecision.ticket_key.like(f"api:{prefix}-%"))
                .group_by(RoutingDecision.ticket_key)
            )
            return {key: int(count) for key, count in rows.all()}
    finally:
        await engine.dispose()


def assert_conserved(stack: Stack, load: TicketLoad, timeout_s: float = 90.0) -> dict[str, int]:
    """Accepted = routed (once each) = counted, once the system has caught up."""
    database_url = stack.env["DATABASE_URL"]
    routed: dict[str, int] = {}

    def caught_up() -> bool:
        nonlocal routed
        routed = asyncio.run(_routed(database_url, load.prefix))
        if not set(load.acked) <= set(routed):
            return False
        try:
            return stack.metric_sum("tickets_routed_total") == len(routed)
        except httpx.HTTPError:
            return False

    try:
        stack.wait_for(caught_up, timeout_s=timeout_s, what="every accepted ticket routed and counted")
    except AssertionError:
        missing = sorted(set(load.acked) - set(routed))
        counted = stack.metric_sum("tickets_routed_total")
        raise AssertionError(
            f"accepted {len(load.acked)}, routed {len(routed)}, counted {counted}; "
            f"{len(missing)} accepted but not routed, e.g. {missing[:5]}"
        ) from None
    assert load.acked, "the generator got no ticket accepted at all"
    extra = set(routed) - set(load.acked)
    assert extra <= set(load.unknown), (
        f"routed tickets never accepted: {sorted(extra - set(load.unknown))[:5]}"
    )
    twice = {key: n for key, n in routed.items() if n > 1}
    assert not twice, f"tickets with more than one ticket.routed decision: {list(twice.items())[:5]}"
    assert stack.metric_sum("tickets_routed_total") == len(routed)
    assert stack.metric_sum("ticket_backlog_open") + stack.metric_sum("tickets_resolved_total") == len(routed)
    return routed
