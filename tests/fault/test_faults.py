"""Fault injection under load: crashed services, a hung broker, a stopped database.

After each fault, with a generator posting tickets all along: every ticket intake acknowledged
is routed exactly once (one ``ticket.routed`` decision) and counted once by the metrics service,
and nothing that was refused shows up. Timings are not judged here; they live in ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.kafka.embedded import EmbeddedBroker
from tests.e2e.stack import Stack
from tests.fault.conftest import TicketLoad, assert_conserved

pytestmark = [pytest.mark.fault, pytest.mark.e2e, pytest.mark.slow]

BROKER_PAUSE_S = float(os.environ.get("FAULT_BROKER_PAUSE_S", "30"))
DATABASE_STOP_S = float(os.environ.get("FAULT_DATABASE_STOP_S", "10"))
HUNG_SETTLE_S = min(5.0, BROKER_PAUSE_S / 2)
FLOWING = 20  # tickets counted by the metrics service before a fault: the pipeline is in service


def counted(stack: Stack) -> float:
    """Tickets the metrics service counted as routed so far (0 while it does not answer)."""
    try:
        return stack.metric_sum("tickets_routed_total")
    except httpx.HTTPError:
        return 0.0


@pytest.mark.parametrize("service", ["intake", "router", "metrics"])
def test_sigkill_mid_stream_loses_and_duplicates_nothing(fault_stack: Stack, service: str) -> None:
    fault_stack.start_all()
    load = TicketLoad(fault_stack)
    load.start()
    try:
        fault_stack.wait_for(lambda: len(load.acked) >= 100, timeout_s=30, what="load under way")
        # Mid-stream: tickets flow through the router to the metrics service. 100 accepted is not
        # that: the consumer groups were often still joining, and the kill hit an idle consumer.
        fault_stack.wait_for(
            lambda: counted(fault_stack) >= FLOWING, timeout_s=60, what="tickets routed and counted"
        )
        fault_stack.kill(service)  # SIGKILL: no shutdown, no flush, no commit
        assert fault_stack.processes[service].returncode == -signal.SIGKILL
        time.sleep(1)
        fault_stack.start(service)
        started = len(load.acked)
        fault_stack.wait_for(
            lambda: len(load.acked) >= started + 100, timeout_s=60, what="load after restart"
        )
    finally:
        load.finish()
    if service != "intake":
        assert not load.refused and not load.unknown, (load.refused, load.unknown)
    else:  # while it was down, connections were refused; once up, it answers 2xx or 503 at most
        answers = {
            reason.split(":", 1)[0] for reason in load.refused.values() if "ConnectError" not in reason
        }
        assert answers <= {"503"}, list(load.refused.values())[:3]
    assert_conserved(fault_stack, load)


def test_hung_broker_intake_keeps_accepting_via_outbox(
    fault_stack: Stack, own_broker: EmbeddedBroker
) -> None:
    fault_stack.start_all()
    load = TicketLoad(fault_stack)
    load.start()
    try:
        fault_stack.wait_for(lambda: len(load.acked) >= 50, timeout_s=30, what="load under way")
        fault_stack.wait_for(
            lambda: counted(fault_stack) >= FLOWING, timeout_s=60, what="tickets routed and counted"
        )
        outbox_before = fault_stack.metric_sum("intake_events_total", "intake", path="outbox")
        own_broker.pause()  # SIGSTOP: sockets open, nobody answering
        paused_at = time.monotonic()
        try:
            time.sleep(HUNG_SETTLE_S)  # what was fetched before the pause is counted by then
            counted_in_hang = fault_stack.metric_sum("tickets_routed_total")
            time.sleep(max(0.0, BROKER_PAUSE_S - HUNG_SETTLE_S))
            counted_at_resume = fault_stack.metric_sum("tickets_routed_total")
            outbox_at_resume = fault_stack.metric_sum("intake_events_total", "intake", path="outbox")
        finally:
            own_broker.resume()
        resumed_at = time.monotonic()
        accepted_while_hung = load.acked_between(paused_at, resumed_at)
        at_resume = len(load.acked)
        fault_stack.wait_for(
            lambda: len(load.acked) >= at_resume + 100, timeout_s=60, what="load after resume"
        )
    finally:
        load.finish()
    assert not load.refused and not load.unknown, (dict(list(load.refused.items())[:5]), load.unknown)
    # The broker did hang: nothing reached the metrics service through it, and intake could not
    # publish, so it parked tickets in its outbox (without these, a pause that silently did nothing
    # passed every assertion below).
    assert counted_at_resume == counted_in_hang, (counted_in_hang, counted_at_resume)
    assert outbox_at_resume > outbox_before, (outbox_before, outbox_at_resume)
    # Intake kept answering 2xx throughout the hang (through its outbox); how fast is the benchmarks'
    # business, so this only asks for steady acceptance (at least one ticket per second of hang).
    assert accepted_while_hung >= BROKER_PAUSE_S, accepted_while_hung
    assert_conserved(fault_stack, load, timeout_s=120)


def _controllable_postgres(url: str | None) -> tuple[str, str] | None:
    """(version, cluster) of the local cluster serving ``url`` when we may stop and start it."""
    if not url or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    parsed = make_url(url)
    if (parsed.host or "127.0.0.1") not in ("127.0.0.1", "localhost"):
        return None
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(parsed.port or 5432) and fields[3] == "online":
            return fields[0], fields[1]
    return None


def test_database_stopped_router_holds_the_batch(fault_stack: Stack) -> None:
    url = fault_stack.env["DATABASE_URL"]
    cluster = _controllable_postgres(url) if url.startswith("postgresql") else None
    if cluster is None:
        pytest.skip("needs TEST_POSTGRES_URL on a local cluster that pg_ctlcluster can stop (as root)")
    version, name = cluster
    fault_stack.start_all()
    load = TicketLoad(fault_stack)
    load.start()
    try:
        fault_stack.wait_for(lambda: len(load.acked) >= 50, timeout_s=30, what="load under way")
        fault_stack.wait_for(  # the router and the metrics service at work, not still joining
            lambda: counted(fault_stack) >= FLOWING, timeout_s=60, what="tickets routed and counted"
        )
        subprocess.run(["pg_ctlcluster", version, name, "stop", "-m", "fast"], check=True, timeout=60)
        try:
            time.sleep(DATABASE_STOP_S)
        finally:
            subprocess.run(["pg_ctlcluster", version, name, "start"], check=True, timeout=60)
        restarted = len(load.acked)
        fault_stack.wait_for(
            lambda: len(load.acked) >= restarted + 100, timeout_s=60, what="load after restart"
        )
    finally:
        load.finish()
    # While the database was down intake refused (503, nothing recorded) or did not answer in
    # time; neither counts as accepted, and conservation below holds for what was.
    refusals = {reason.split(":", 1)[0] for reason in load.refused.values()}
    # 503 and nothing else: the API-key cache serves a key it knows, and one it cannot look up is
    # a 503 too (shared/auth.py); a 500 would be an error escaping.
    assert refusals <= {"503"}, list(load.refused.values())[:3]
    print(f"refused {len(load.refused)} ({refusals}), unanswered {len(load.unknown)}")
    assert_conserved(fault_stack, load, timeout_s=120)
    assert "batch failed, will retry" in fault_stack.log_tail("router", 2000)
