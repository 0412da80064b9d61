"""Idle HTTP connections stay open for ``HTTP_KEEP_ALIVE_S`` (75 s by default): with uvicorn's own
5 s, a load balancer that keeps idle upstream connections for 60 s (AWS ALB, nginx) sends requests
on connections the service is closing, and webhook senders see intermittent 502s."""

from __future__ import annotations

import http.client
import time

import pytest

from tests.e2e.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def answers_after_idling(port: int, idle_s: float) -> bool:
    """One request, ``idle_s`` of silence, then another on the same connection: answered?
    (http.client reads whole responses and never reconnects on its own.)"""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        assert first.status == 200 and first.read()
        socket_before = connection.sock
        time.sleep(idle_s)
        try:
            connection.request("GET", "/healthz")
            again = connection.getresponse()
            again.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            return False
        assert connection.sock is socket_before  # the same connection, not a new one
        return again.status == 200
    finally:
        connection.close()


def test_idle_connections_outlive_uvicorns_default_and_follow_the_setting(stack: Stack) -> None:
    stack.start("intake", wait=False)
    stack.start("intake-2", extra_env={"HTTP_KEEP_ALIVE_S": "1"}, wait=False)
    stack.wait_ready("intake")
    stack.wait_ready("intake-2")

    assert answers_after_idling(stack.ports["intake"], idle_s=6)  # uvicorn alone closes after 5 s
    assert not answers_after_idling(stack.ports["intake-2"], idle_s=4)
