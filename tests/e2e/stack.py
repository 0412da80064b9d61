"""The three services as real processes, on the embedded broker and a real database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.auth import Role, create_api_key
from shared.db.engine import create_engine, session_factory
from shared.kafka.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BIND_FAILED = b"address already in use"
BIND_ATTEMPTS = 3
LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp


def owns_listener(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on ``port`` (Linux /proc; elsewhere the
    question cannot be asked and the answer is yes). A /readyz answer on a port proves nothing
    when another service got the same port and bound it first."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    inodes = set()
    for table in tables:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN_STATE and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd_dir / fd) in inodes for fd in os.listdir(fd_dir))
    except OSError:  # the process is gone, or an fd closed while we looked
        return False


async def make_key(database_url: str, role: Role) -> str:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, plain = await create_api_key(session, f"test {role.value}", role)
        return plain
    finally:
        await engine.dispose()


class Stack:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.ports = {"intake": free_port(), "router": free_port(), "metrics": free_port()}
        self.env = {
            **os.environ,
            **env,
            "INTAKE_PORT": str(self.ports["intake"]),
            "ROUTER_PORT": str(self.ports["router"]),
            "METRICS_PORT": str(self.ports["metrics"]),
            "METRICS_CHECKPOINT_INTERVAL_S": "1",
            "METRICS_CLOCK_TICK_S": "0.5",
        }
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.extra_envs: dict[str, dict[str, str]] = {}
        self.log_offsets: dict[str, int] = {}
        self.intake_key = asyncio.run(make_key(env["DATABASE_URL"], Role.INTAKE))
        self.admin_key = asyncio.run(make_key(env["DATABASE_URL"], Role.ADMIN))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str, extra_env: dict[str, str] | None = None, wait: bool = True) -> None:
        """Start ``service`` ("router"), or a replica of it named like "router-2" on its own port."""
        module = service.split("-", 1)[0]
        port = self.ports.setdefault(service, free_port())
        self.extra_envs[service] = extra_env or {}
        log = open(self.log_dir / f"{service}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.log_offsets[service] = log.tell()
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{module}"],
            cwd=REPO_ROOT,
            env={**self.env, f"{module.upper()}_PORT": str(port), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready(service)

    def start_all(self) -> None:
        for service in ("router", "metrics", "intake"):
            self.start(service, wait=False)
        for service in ("router", "metrics", "intake"):
            self.wait_ready(service)

    def wait_ready(self, service: str, timeout_s: float = 60) -> None:
        """Until the process started for ``service`` answers /readyz itself. Another process may take
        the port between ``free_port`` and the service's bind (uvicorn binds after the lifespan has
        started): the service then exits, and is started again on a fresh port."""
        deadline = time.monotonic() + timeout_s
        attempts = 1
        while time.monotonic() < deadline:
            process = self.processes[service]
            if process.poll() is not None:
                if attempts < BIND_ATTEMPTS and BIND_FAILED in self.log_since_start(service):
                    attempts += 1
                    self.ports[service] = free_port()
                    self.start(service, self.extra_envs[service], wait=False)
                    continue
                raise RuntimeError(f"{service} exited with {process.returncode}: {self.log_tail(service)}")
            try:
                answered = httpx.get(self.url(service) + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                answered = False
            if answered and owns_listener(process.pid, self.ports[service]):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{service} not ready: {self.log_tail(service)}")

    def log_since_start(self, service: str) -> bytes:
        with open(self.log_dir / f"{service}.log", "rb") as log:
            log.seek(self.log_offsets[service])
            return log.read()

    def log_tail(self, service: str, lines: int = 30) -> str:
        path = self.log_dir / f"{service}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[service]
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def post_ticket(self, body: dict[str, object]) -> httpx.Response:
        return httpx.post(
            self.url("intake") + "/v1/tickets",
            json=body,
            headers={"Authorization": f"Bearer {self.intake_key}"},
            timeout=30,
        )

    def metrics_text(self, service: str) -> str:
        return httpx.get(self.url(service) + "/metrics", timeout=10).text

    def metric_sum(self, name: str, service: str = "metrics", **labels: str) -> float:
        text = self.metrics_text(service)
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def wait_for(
        self,
        predicate: Callable[[], object],
        timeout_s: float = 10.0,
        what: str | Callable[[], str] = "condition",
    ) -> float:
        """Poll until ``predicate()`` holds; returns the seconds it took. ``what`` may be a function
        so that the failure message describes the last state seen."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if predicate():
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what() if callable(what) else what}")
