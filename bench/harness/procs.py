"""Starting the broker, a database and services as separate processes, and stopping them again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from services.intake.models import WebhookDelivery
from services.intake.sources.schemas import SourceCreate
from services.intake.sources.service import create_source
from shared.auth import Role, create_api_key
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.db.scratch import create_database, drop_database
from shared.kafka.embedded import EmbeddedBroker, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL")


def databases() -> list[str]:
    """The backends to measure: SQLite always, PostgreSQL when a server URL is configured;
    ``BENCH_DATABASES=postgres`` (or ``sqlite``) keeps only that one."""
    available = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
    chosen = [kind.strip() for kind in os.environ.get("BENCH_DATABASES", "").split(",") if kind.strip()]
    unknown = [kind for kind in chosen if kind not in available]
    if unknown:
        raise ValueError(f"BENCH_DATABASES: {unknown} not available here; choose from {available}")
    return [kind for kind in available if kind in chosen] if chosen else available


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database; PostgreSQL ones are dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        upgrade(url)
        yield url
        return
    assert POSTGRES_URL, "no PostgreSQL URL configured"
    url = asyncio.run(create_database(POSTGRES_URL, "tr_bench"))
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(drop_database(url))


async def make_key(database_url: str, role: Role) -> str:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            _, plain = await create_api_key(session, f"bench {role.value}", role)
        return plain
    finally:
        await engine.dispose()


async def make_source(
    database_url: str, name: str, adapter: str, secret: str, options: dict[str, Any]
) -> None:
    """Configure a webhook source in the database, as ``ticketctl`` or the admin API would."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            data = {"name": name, "type": adapter, "secret": secret, "options": options}
            await create_source(session, SourceCreate.model_validate(data), actor="bench")
    finally:
        await engine.dispose()


async def count_deliveries(database_url: str, source: str) -> int:
    """Delivery ids intake claimed for ``source`` (one per webhook it accepted as new)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            query = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.source == source)
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


@contextmanager
def broker(workdir: Path) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(log_path=workdir / "broker.log")
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def unique_topics(prefix: str = "bench") -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "TOPIC_TICKET_EVENTS": f"{prefix}-tickets-{suffix}",
        "TOPIC_ROUTING_EVENTS": f"{prefix}-routing-{suffix}",
        "TOPIC_DEAD_LETTER": f"{prefix}-dead-letter-{suffix}",
    }


def cpu_us_per_item(before: float | None, after: float | None, items: int) -> float | None:
    """A process's CPU time per item, in µs, between two ``Process.cpu_seconds`` readings."""
    if before is None or after is None or not items:
        return None
    return round((after - before) / items * 1e6, 1)


def pid_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time so far of every PostgreSQL server process on this machine (the backends serving
    the bench's connections among them). Read before the connections close: an exited backend's
    time leaves the sum."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _comm(entry) == "postgres":
            total += pid_cpu_seconds(int(entry.name)) or 0.0
    return total


def machine_busy_seconds() -> float:
    """CPU time spent by all cores so far, not idle or waiting for I/O (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle_and_iowait = fields[3] + fields[4]
    return (sum(fields[:8]) - idle_and_iowait) / os.sysconf("SC_CLK_TCK")


def _comm(proc_dir: Path) -> str:
    try:
        return (proc_dir / "comm").read_text().strip()
    except OSError:
        return ""


class Process:
    """One child process with its log file; ``ready`` polls ``/readyz`` when it serves HTTP."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.profiled = "py-spy" in argv[0]
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(
            argv, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process so far (Linux /proc); None when unknown or when
        py-spy wraps it (the pid would be py-spy's)."""
        return None if self.profiled else pid_cpu_seconds(self.popen.pid)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, port: int, timeout_s: float = 60.0, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.popen.poll() is None:
            # py-spy writes its profile on SIGINT (and forwards it: uvicorn stops gracefully).
            self.popen.send_signal(signal.SIGINT if self.profiled else signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def service(name: str, env: dict[str, str], log_dir: Path) -> tuple[Process, int]:
    """Start ``services.<name>`` on a free port; returns the process and its port."""
    port = free_port()
    argv = profiled(name, [sys.executable, "-m", f"services.{name}"])
    process = Process(name, argv, {**env, f"{name.upper()}_PORT": str(port)}, log_dir)
    return process, port


def profiled(name: str, argv: list[str]) -> list[str]:
    """``argv`` under py-spy (pip install py-spy) when BENCH_PROFILE names ``name`` (``intake``,
    ``bare_intake``...); the collapsed stacks land in bench/results."""
    if name not in os.environ.get("BENCH_PROFILE", "").split(","):
        return argv
    out = REPO_ROOT / "bench" / "results" / f"profile-{name}-{uuid.uuid4().hex[:6]}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).parent / "py-spy")
    # BENCH_PROFILE_GIL=1 samples only the thread holding the GIL: CPU in Python, not waits.
    gil = ["--gil"] if os.environ.get("BENCH_PROFILE_GIL") == "1" else []
    return [py_spy, "record", "-r", "200", *gil, "-f", "raw", "-o", str(out), "--", *argv]


def bare_intake(env: dict[str, str], log_dir: Path) -> tuple[Process, int]:
    """Start the intake baseline (bench/harness/bare_intake.py) on a free port."""
    port = free_port()
    argv = profiled("bare_intake", [sys.executable, "-m", "bench.harness.bare_intake", "--port", str(port)])
    return Process("bare_intake", argv, env, log_dir), port


def bare_router(
    env: dict[str, str], log_dir: Path, bootstrap: str, source: str, target: str, count: int, timeout_s: float
) -> Process:
    """Start the router baseline (bench/harness/bare_router.py): forward ``count`` events, own group."""
    argv = [
        sys.executable, "-m", "bench.harness.bare_router", "--bootstrap", bootstrap, "--source", source,
        "--target", target, "--group", f"bare-{uuid.uuid4().hex[:6]}", "--count", str(count),
        "--timeout", str(timeout_s),
    ]  # fmt: skip
    return Process("bare_router", argv, env, log_dir)


def base_env(bootstrap: str, database_url: str, partitions: int = 6) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "TOPIC_PARTITIONS": str(partitions),
        "LOG_LEVEL": "WARNING",
        **unique_topics(),
    }
