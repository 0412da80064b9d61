"""Idle HTTP connections stay open for ``HTTP_KEEP_ALIVE_S`` (75 s by default): with uvicorn's own
5 s, a load balancer that keeps idle upstream connections for 60 s (AWS ALB, nginx) sends requests
on connections the service is closing, and webhook senders see intermittent 502s."""

from __future__ import annotations

import socket
import time

import pytest

from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: service\r\n\r\n"


def answers_after_idling(port: int, idle_s: float) -> bool:
    """One request, ``idle_s`` of silence, then another on the same connection: answered?"""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(REQUEST)
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(idle_s)
        try:
            connection.sendall(REQUEST)
            return connection.recv(65536).startswith(b"HTTP/1.1 200")
        except OSError:  # reset by the peer
            return False


def test_idle_connections_outlive_uvicorns_default_and_follow_the_setting(stack: Stack) -> None:
    stack.start("intake", wait=False)
    stack.start("intake-2", extra_env={"HTTP_KEEP_ALIVE_S": "2"}, wait=False)
    stack.wait_ready("intake")
    stack.wait_ready("intake-2")

    assert answers_after_idling(stack.ports["intake"], idle_s=6)  # uvicorn alone closes after 5 s
    assert not answers_after_idling(stack.ports["intake-2"], idle_s=3)
