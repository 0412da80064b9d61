"""The embedded broker starts on its own port or not at all: a port someone else listens on is not
taken for the broker having started."""

from __future__ import annotations

import socket
import time

import pytest

from shared.kafka.embedded import EmbeddedBroker


def test_a_port_in_use_fails_the_start_instead_of_passing_for_the_broker() -> None:
    # Another process (a broker left running, a Kafka in a container) listens on the port asked for:
    # tansu cannot bind it and exits, and the services would be pointed at the other one.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = EmbeddedBroker(port=taken.getsockname()[1])
        try:
            with pytest.raises(RuntimeError, match="in use"):
                broker.start(timeout_s=5)
        finally:
            broker.stop()


def test_a_broker_that_exits_on_start_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.kafka.embedded.broker_binary", lambda: "false")  # exits 1 at once
    broker = EmbeddedBroker()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with code 1"):
        broker.start(timeout_s=10)
    assert time.monotonic() - started < 5  # not the whole wait for a port nobody will open
