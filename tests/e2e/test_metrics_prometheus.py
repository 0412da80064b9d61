"""The metrics service's /metrics as real Prometheus tooling sees it: promtool's linter, and a
Prometheus server scraping the running service (with our alert rules loaded)."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from shared.events import utc_now
from shared.kafka.embedded import free_port
from tests.e2e.stack import REPO_ROOT, Stack
from tests.e2e.test_metrics_acceptance import produce, wait_caught_up
from tests.integration.metrics.truth import Stream, Truth

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def fill(stack: Stack) -> Truth:
    stack.start("metrics")
    stream, truth = Stream(utc_now(), random.Random(5)), Truth()
    produce(stack, [env for _ in range(60) for env in stream.step()], truth)
    wait_caught_up(stack, truth)
    return truth


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (CI installs it)")
def test_promtool_lints_the_live_exposition_clean(stack: Stack) -> None:
    fill(stack)
    text = stack.metrics_text("metrics")
    assert "ticket_open_age_bucket{" in text and "consumer_lag_messages{" in text
    assert PROMTOOL is not None
    linted = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus server not installed (CI installs it)")
def test_prometheus_scrapes_the_backlog_gauges(stack: Stack, tmp_path: Path) -> None:
    fill(stack)
    expected = stack.metric_sum("ticket_backlog_open")
    assert expected > 0
    port = free_port()
    shutil.copy(REPO_ROOT / "deploy/prometheus/alerts.yml", tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],  # the real rules must load too
        "scrape_configs": [
            {"job_name": "metrics", "static_configs": [{"targets": [f"127.0.0.1:{stack.ports['metrics']}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    assert PROMETHEUS is not None
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def query(expr: str) -> list[dict]:
        response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return response.json()["data"]["result"]

    try:
        deadline = time.monotonic() + 60
        result: list[dict] = []
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                result = query("sum(ticket_backlog_open)")
                if result:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert result, "Prometheus never scraped ticket_backlog_open"
        assert float(result[0]["value"][1]) == expected
        assert [float(r["value"][1]) for r in query('up{job="metrics"}')] == [1.0]
        by_team = {
            r["metric"]["team"]: float(r["value"][1]) for r in query("sum by (team) (ticket_backlog_open)")
        }
        assert sum(by_team.values()) == expected and "triage" in by_team
        rules = httpx.get(f"{base}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"BacklogGrowing", "ServiceDown"}
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
