"""deploy/prometheus: promtool accepts the configuration and rules; the scrape jobs match the services."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, SERVICES

PROMETHEUS = DEPLOY / "prometheus"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


@needs_promtool
def test_promtool_accepts_the_configuration() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout + result.stderr


@needs_promtool
def test_promtool_rejects_a_broken_rule(tmp_path) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum by (\n")
    result = subprocess.run(["promtool", "check", "rules", str(broken)], capture_output=True, timeout=60)
    assert result.returncode != 0


def test_rules_file_is_the_shared_alerts_file() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert "ConsumerLagHigh" in alerts


def test_every_service_is_scraped_on_its_port() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, (_, port) in SERVICES.items():
        (discovery,) = jobs[name]["dns_sd_configs"]
        assert discovery == {"names": [name], "type": "A", "port": port, "refresh_interval": "30s"}
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"


needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None,
    reason="amtool is not installed (Debian: apt-get install prometheus-alertmanager)",
)
ALERTMANAGER = DEPLOY / "alertmanager/alertmanager.yml"


@needs_amtool
def test_amtool_accepts_the_alertmanager_configuration() -> None:
    result = subprocess.run(
        ["amtool", "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
def test_critical_alerts_go_to_oncall_and_the_rest_to_the_team() -> None:
    def receiver(*labels: str) -> str:
        result = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    assert receiver("alertname=ServerErrors", "severity=critical") == "oncall"
    assert receiver("alertname=BacklogGrowing", "severity=warning", "team=billing") == "team"


def test_prometheus_sends_its_alerts_to_the_compose_alertmanager() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    service = compose["services"]["alertmanager"]
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in service["volumes"]
    assert any(str(port).endswith(":9093") for port in service["ports"])
    assert "alertmanager" in compose["services"]["prometheus"]["depends_on"]


def test_webhook_rejections_cover_every_route_of_the_webhook_handler() -> None:
    from services.intake.app import create_app
    from services.intake.receiver.endpoints import receive_webhook

    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "WebhooksRejected"]
    matcher = re.search(r'route\s*(=~|=)\s*"([^"]*)"', rule["expr"])
    assert matcher is not None, rule["expr"]
    op, value = matcher.groups()
    # PromQL string escapes (\\ -> \), then its regexes are anchored at both ends.
    pattern = value.encode().decode("unicode_escape") if op == "=~" else re.escape(value)
    paths = [
        getattr(r, "path", "") for r in create_app().routes if getattr(r, "endpoint", None) is receive_webhook
    ]
    assert len(paths) >= 2  # with and without the trailing slash
    for path in paths:
        assert re.fullmatch(pattern, path), f"{path} is not counted by route{op}{value!r}"


def test_webhook_rejections_cover_every_refusal_the_webhook_handler_documents() -> None:
    # Each 4xx of the webhook operation refuses the vendor's delivery (the vendor retries, then
    # gives up): 400 among them, a signed body that is not a JSON object, which the alert missed.
    from services.intake.app import create_app

    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "WebhooksRejected"]
    matcher = re.search(r'status\s*=~\s*"([^"]*)"', rule["expr"])
    assert matcher is not None, rule["expr"]
    responses = create_app().openapi()["paths"]["/v1/webhooks/{name}"]["post"]["responses"]
    refusals = sorted(code for code in responses if code.startswith("4"))
    assert "400" in refusals and "401" in refusals
    missed = [code for code in refusals if not re.fullmatch(matcher.group(1), code)]
    assert missed == [], f"WebhooksRejected does not count {missed}"
