"""``free_port`` never hands out a port twice: the kernel does (about one call in seventeen on a
Linux loopback), and two services given the same port race for it."""

from __future__ import annotations

import socket

from shared.kafka.embedded import free_port


def test_free_port_never_repeats_within_a_process() -> None:
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_a_free_port_can_be_bound() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
