"""deploy/docker-compose.yml: compose-spec schema, `docker compose config`, and the facts we rely on."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    DEPLOY,
    REPO_ROOT,
    SERVICES,
    docker_compose_available,
    env_names,
    read_env_file,
)
from tests.deploy.test_k8s import SHUTDOWN_BUDGET_S

COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRETS = {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "KAFKA_CLUSTER_ID"}
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def generated_env() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16),
        "KAFKA_CLUSTER_ID": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
    }


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (enough for our file); $$ is a literal $."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name} is required: {arg}")
        return arg or ""

    return VARIABLE.sub(value, text).replace("$$", "$")


def services() -> dict[str, Any]:
    return yaml.safe_load(interpolate(COMPOSE.read_text(), generated_env()))["services"]


def test_matches_the_compose_specification() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    vendor = pytest.importorskip("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((Path(vendor.__file__).parent / "compose-spec.json").read_text())
    document = yaml.safe_load(interpolate(COMPOSE.read_text(), generated_env()))
    jsonschema.validate(document, schema)
    broken = {**document, "services": {**document["services"], "intake": {"imagee": "x"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.skipif(not docker_compose_available(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in generated_env().items()))
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        ["docker", "compose", "--env-file", "/dev/null", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert missing.returncode != 0, "compose must refuse to start without the secrets"


def test_secrets_come_from_the_env_file_only() -> None:
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), f"{name} must be a required ${{{name}:?...}}"
    with pytest.raises(KeyError):
        interpolate(text, {})
    example = read_env_file(ENV_EXAMPLE)
    assert all(example.get(name) == "" for name in SECRETS), "the example holds no secret values"
    used = {match.group(1) for match in VARIABLE.finditer(text)}
    assert used <= set(example), f"undocumented in .env.example: {sorted(used - set(example))}"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_kafka_is_kraft_without_topic_auto_creation() -> None:
    kafka = services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_postgres_has_a_volume_and_a_healthcheck() -> None:
    postgres = services()["postgres"]
    assert re.fullmatch(r"postgres:[\w.-]+", postgres["image"])
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_migrate_runs_once_before_the_services() -> None:
    all_services = services()
    migrate = all_services["migrate"]
    assert migrate["command"] == ["ticketctl", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICES:
        depends = all_services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_environment_and_healthcheck(name: str) -> None:
    settings_class, port = SERVICES[name]
    service = services()[name]
    env = service["environment"]
    assert service["command"] == [name], "the image entrypoint runs python -m services.<name>"
    assert set(env) <= env_names(settings_class), f"unknown settings: {set(env) - env_names(settings_class)}"
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env[f"{name.upper()}_HOST"] == "0.0.0.0"
    assert int(env[f"{name.upper()}_PORT"]) == port == settings_class.model_fields[f"{name}_port"].default
    assert env["LOG_JSON"] == "true" and env["TOPIC_REPLICATION_FACTOR"] == "1" and "TOPIC_PARTITIONS" in env
    assert service["healthcheck"]["test"] == ["CMD", "python", "/usr/local/bin/ticket-router-healthcheck"]
    assert any(str(p).endswith(f":{port}") for p in service["ports"])
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


@pytest.mark.parametrize("name", list(SERVICES))
def test_the_stop_grace_period_covers_the_worst_case_shutdown(name: str) -> None:
    grace = services()[name]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) >= SHUTDOWN_BUDGET_S, f"{name}: {grace}"


def test_prometheus_and_grafana_mount_the_provisioned_files() -> None:
    all_services = services()
    prometheus_mounts = all_services["prometheus"]["volumes"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus_mounts
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus_mounts
    grafana_mounts = {m.split(":")[0]: m.split(":")[1] for m in all_services["grafana"]["volumes"]}
    assert grafana_mounts["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert grafana_mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/ticket-router.yml").read_text())
    # deploy/grafana/dashboards/ticket-router.json lands in the folder the dashboard provider reads.
    assert provider["providers"][0]["options"]["path"] == grafana_mounts["./grafana/dashboards"]
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert all_services["grafana"]["image"].startswith("grafana/grafana:")
    assert all_services["prometheus"]["image"].startswith("prom/prometheus:")


def test_the_provisioned_dashboard_is_valid_json_with_panels() -> None:
    dashboard = DEPLOY / "grafana/dashboards/ticket-router.json"  # the compose file provisions it
    document = json.loads(dashboard.read_text())
    assert document.get("panels") or document.get("rows")
