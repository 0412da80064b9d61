"""``ticketctl dev run``: what ``make run`` starts: broker, migrations, seed, three services."""

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
from rich.text import Text
from sqlalchemy import select

from services.ticketctl.database import checked_url, in_transaction
from services.ticketctl.demo import seed_demo
from services.ticketctl.output import console, errors, fail
from shared.auth import Role, create_api_key, hash_key
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.db.models import ApiKey
from shared.kafka.embedded import EmbeddedBroker
from shared.settings import DevSettings, IntakeSettings, MetricsSettings, RouterSettings


def service_urls() -> list[tuple[str, str]]:
    """Each service and where it listens, as its settings say (``INTAKE_PORT``...): the readiness
    wait and the banner must look where the services are, not at the default ports."""

    def url(host: str, port: int) -> str:
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # every address: loopback too
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    intake, router, metrics = IntakeSettings(), RouterSettings(), MetricsSettings()
    return [
        ("intake", url(intake.intake_host, intake.intake_port)),
        ("router", url(router.router_host, router.router_port)),
        ("metrics", url(metrics.metrics_host, metrics.metrics_port)),
    ]


def read_credentials(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


async def ensure_credentials(database_url: str, path: Path) -> tuple[dict[str, str], bool]:
    """Reuse the keys in ``path`` while they are valid; otherwise create and write new ones."""
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        existing = read_credentials(path)
        async with sessions() as session:
            valid = True
            for name in ("INTAKE_API_KEY", "ADMIN_API_KEY"):
                key = existing.get(name)
                row = (
                    await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
                    if key
                    else None
                )
                valid = valid and row is not None and row.revoked_at is None
            if valid:
                return existing, False
            async with session.begin():
                _, intake = await create_api_key(session, "dev intake (make run)", Role.INTAKE)
                _, admin = await create_api_key(session, "dev admin (make run)", Role.ADMIN)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"INTAKE_API_KEY={intake}\nADMIN_API_KEY={admin}\n")
        os.chmod(path, 0o600)
        return {"INTAKE_API_KEY": intake, "ADMIN_API_KEY": admin}, True
    finally:
        await engine.dispose()


async def seed(database_url: str, *, sla: bool = True) -> bool:
    return await in_transaction(lambda session: seed_demo(session, sla=sla), database_url)


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    timeout_s: float = 60,
    stopping: Callable[[], bool] = lambda: False,
) -> bool:
    """True once ``process`` answers ready on ``url``; False when it exited first, or when
    ``stopping`` (Ctrl-C) says to give up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None or stopping():
            return False
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"service on {url} not ready after {timeout_s}s")


def embedded_port(settings: DevSettings) -> int:
    """The port of the first of KAFKA_BOOTSTRAP_SERVERS: where the embedded broker listens."""
    servers = settings.kafka_servers()
    port = servers[0].rpartition(":")[2] if servers else ""
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise fail(
            "ticketctl: KAFKA_BOOTSTRAP_SERVERS: expected host:port, e.g. 127.0.0.1:9092 (the "
            "embedded broker listens on the port it names)"
        )
    return int(port)


def run(embedded_broker: bool = True) -> int:
    settings = DevSettings()
    urls = service_urls()  # every service's settings read, so that a mistake stops us before anything starts
    database_url = checked_url(settings.database_url)  # a driver the services lack is named, as by migrate
    var = settings.var_dir
    (var / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    broker: EmbeddedBroker | None = None
    if embedded_broker:
        broker = EmbeddedBroker(port=embedded_port(settings), log_path=var / "logs" / "broker.log")
        try:
            bootstrap = broker.start()
        except (RuntimeError, TimeoutError) as exc:  # its port taken (another broker), say
            raise fail(f"ticketctl: embedded broker: {exc}") from None
        console.print(Text.assemble(("broker", "bold"), f" tansu (in memory) on {bootstrap}"))
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stop = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        upgrade(database_url)
        console.print(Text.assemble(("database", "bold"), " migrated"))
        if asyncio.run(seed(database_url)):
            console.print(Text.assemble(("demo", "bold"), " seeded teams, rules and an SLA policy"))
        credentials_path = var / "dev-credentials.env"
        credentials, created = asyncio.run(ensure_credentials(database_url, credentials_path))
        for name, _url in urls:
            log = open(var / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(
                (
                    name,
                    subprocess.Popen(
                        [sys.executable, "-m", f"services.{name}"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    ),
                )
            )
        for (name, process), (_, url) in zip(processes, urls, strict=True):
            if not wait_ready(url, process, stopping=lambda: stop):
                # Ctrl-C while it starts stops all now; else it exited (its port taken, say)
                return 0 if stop else exited(name, process, var)
        _print_banner(credentials, created, credentials_path, dict(urls))
        while not stop:
            for name, process in processes:
                if process.poll() is not None:
                    return exited(name, process, var)
            time.sleep(0.5)
        return 0
    finally:
        console.print("stopping...")
        for _, process in processes:
            if process.poll() is None:
                process.terminate()  # SIGTERM: each service drains, commits and checkpoints
        for name, process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                console.print(f"{name} did not stop in time; killing it", style="yellow")
                process.kill()
        if broker is not None:
            broker.stop()
        console.print("stopped.")


def exited(name: str, process: subprocess.Popen[bytes], var: Path) -> int:
    """Report a service that stopped on its own; dev run's exit status."""
    message = f"{name} exited with code {process.returncode}; see {var / 'logs' / name}.log"
    errors.print(message, style="red", soft_wrap=True)
    return 1


def _print_banner(credentials: dict[str, str], created: bool, path: Path, urls: dict[str, str]) -> None:
    console.print()
    console.print("ticket router is running", style="bold green")
    console.print(f"  intake   {urls['intake']}  (API docs: /docs)")
    console.print(f"  router   {urls['router']}  (API docs: /docs)")
    console.print(f"  metrics  {urls['metrics']}/metrics")
    console.print(f"  keys     {'created and ' if created else ''}stored in {path} (mode 600)")
    console.print(f"           INTAKE_API_KEY={credentials['INTAKE_API_KEY']}")
    console.print(f"           ADMIN_API_KEY={credentials['ADMIN_API_KEY']}")
    console.print(f"  logs     {path.parent / 'logs'}/")
    console.print()
    # soft_wrap: lines to copy and paste are never cut at the terminal's (or a log's) width.
    console.print(
        f"Try:  source {path} && curl -s -X POST {urls['intake']}/v1/tickets \\",
        soft_wrap=True,
    )
    console.print(
        '        -H "Authorization: Bearer $INTAKE_API_KEY" -H "Content-Type: application/json" \\',
        soft_wrap=True,
    )
    console.print(
        """        -d '{"external_id": "1", "subject": "VPN down", "description": "cannot log in"}'""",
        soft_wrap=True,
    )
    console.print("Press Ctrl-C to stop.")
