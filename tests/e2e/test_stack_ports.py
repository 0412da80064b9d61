"""The test stack itself: a service whose port was taken before it could bind is started again on a
fresh one, and a /readyz answer from whoever holds the port does not count as the service ready.
(A fault test once ran on without its router: another process had its port.)"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack, owns_listener

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_service_whose_port_is_taken_starts_again_on_a_fresh_one(stack: Stack, taken_port: int) -> None:
    stack.ports["metrics"] = taken_port

    stack.start("metrics")

    assert stack.ports["metrics"] != taken_port
    assert stack.log_since_start("metrics")  # the second process's log, after the first's bind failure
    assert b"address already in use" in (stack.log_dir / "metrics.log").read_bytes()
    assert owns_listener(stack.processes["metrics"].pid, stack.ports["metrics"])
    assert httpx.get(stack.url("metrics") + "/readyz", timeout=5).status_code == 200


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_owns_listener_tells_the_holder_of_a_port_from_other_processes(taken_port: int) -> None:
    assert owns_listener(os.getpid(), taken_port)
    assert not owns_listener(os.getppid(), taken_port)
