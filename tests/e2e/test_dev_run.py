"""``make run`` (``ticketctl dev run``) end to end, moved off its default ports as the README's
settings allow: it waits for and announces the services where they listen, and Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared.kafka.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_make_run_on_other_ports_announces_them_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("INTAKE_PORT", "ROUTER_PORT", "METRICS_PORT", "KAFKA")}
    env = {
        **os.environ,
        "INTAKE_PORT": str(ports["INTAKE_PORT"]),
        "ROUTER_PORT": str(ports["ROUTER_PORT"]),
        "METRICS_PORT": str(ports["METRICS_PORT"]),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{ports['KAFKA']}",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}",
        "VAR_DIR": str(tmp_path / "var"),
    }
    output = tmp_path / "run.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ticketctl"), "dev", "run"],  # what `make run` runs
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "ticket router is running" not in output.read_text():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        banner = output.read_text()
        intake = f"http://127.0.0.1:{ports['INTAKE_PORT']}"
        assert f"intake   {intake}" in banner and f"http://127.0.0.1:{ports['ROUTER_PORT']}" in banner
        assert f"curl -s -X POST {intake}/v1/tickets \\\n" in banner  # whole, to copy
        assert httpx.get(f"http://127.0.0.1:{ports['METRICS_PORT']}/readyz", timeout=5).status_code == 200
        keys = dict(
            line.split("=", 1) for line in (tmp_path / "var" / "dev-credentials.env").read_text().split()
        )
        assert_demo_sla_applies(intake, f"http://127.0.0.1:{ports['ROUTER_PORT']}", keys)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, output.read_text()
    assert output.read_text().rstrip().endswith("stopped.")


def assert_demo_sla_applies(intake: str, router: str, keys: dict[str, str]) -> None:
    """The demo's SLA policy gives a new ticket its deadlines: an outage is P1 by the demo rules,
    15 minutes to the first response and 4 hours to resolution on the always-open calendar."""
    posted = httpx.post(
        f"{intake}/v1/tickets",
        headers={"Authorization": f"Bearer {keys['INTAKE_API_KEY']}"},
        json={"external_id": "demo-sla", "subject": "Production down for everyone"},
        timeout=10,
    )
    assert posted.status_code == 202, posted.text
    admin = {"Authorization": f"Bearer {keys['ADMIN_API_KEY']}"}
    deadline = time.monotonic() + 60
    while (
        answer := httpx.get(f"{router}/v1/tickets/api:demo-sla", headers=admin, timeout=10)
    ).status_code == 404:
        assert time.monotonic() < deadline, "the ticket was not routed within 60 s"
        time.sleep(0.2)
    ticket = answer.json()
    assert ticket["priority"] == "P1" and ticket["sla"]["policy"] == "standard", ticket
    created = datetime.fromisoformat(ticket["created_at"])
    assert datetime.fromisoformat(ticket["sla"]["first_response_due"]) - created == timedelta(minutes=15)
    assert datetime.fromisoformat(ticket["sla"]["resolution_due"]) - created == timedelta(hours=4)
