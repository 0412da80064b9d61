"""The dashboard's queries evaluated by promtool on series shaped like the services' (several
instances, several partitions): what a panel shows is what its title says, aggregated right."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY

DASHBOARD = DEPLOY / "grafana/dashboards/ticket-router.json"
pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


def panel_expr(title: str, index: int = 0) -> str:
    (panel,) = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["title"] == title]
    return str(panel["targets"][index]["expr"]).replace("$team", ".*")


def assert_evaluates(
    tmp_path: Path, expr: str, series: dict[str, str], eval_time: str, expected: list[dict[str, Any]]
) -> None:
    """promtool's unit test of ``expr`` at ``eval_time`` over ``series`` (1m apart)."""
    (tmp_path / "none.yml").write_text("groups: []\n")
    test = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "promql_expr_test": [{"expr": expr, "eval_time": eval_time, "exp_samples": expected}],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        ["promtool", "test", "rules", "test.yml"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkpoint_age_is_that_of_the_oldest_shard_of_each_instance(tmp_path: Path) -> None:
    # A crash replays each shard from its own checkpoint: the oldest one is how far back it goes,
    # and a shard whose checkpoints keep failing must show, not hide behind its fresher neighbours.
    assert_evaluates(
        tmp_path,
        panel_expr("Metrics checkpoint age"),
        {
            'metrics_checkpoint_timestamp_seconds{instance="m1", partition="0"}': "100x20",
            'metrics_checkpoint_timestamp_seconds{instance="m1", partition="1"}': "500x20",
            'metrics_checkpoint_timestamp_seconds{instance="m2", partition="2"}': "550x20",
        },
        "10m",
        [{"labels": '{instance="m1"}', "value": 500}, {"labels": '{instance="m2"}', "value": 50}],
    )


# Our three services and something else of the same Prometheus, scraped under each configuration:
# the compose file's jobs (one per service, by DNS), annotation-based Kubernetes scraping (one
# job for every annotated pod of the cluster, its pod labels mapped onto the targets), and the
# Prometheus Operator's ServiceMonitor (a job per Kubernetes Service, whose name it also sets as
# the target's `service` label: ours are named after the services).
SCRAPES = {
    "compose": {
        'job="intake", instance="172.18.0.5:8000"': "intake",
        'job="router", instance="172.18.0.6:8001"': "router",
        'job="metrics", instance="172.18.0.7:8002"': "metrics",
        'job="prometheus", instance="localhost:9090"': None,
    },
    "annotations": {
        'job="kubernetes-pods", instance="10.1.0.5:8000", pod="intake-1"': "intake",
        'job="kubernetes-pods", instance="10.1.0.6:8001", pod="router-1"': "router",
        'job="kubernetes-pods", instance="10.1.0.7:8002", pod="metrics-1"': "metrics",
        'job="kubernetes-pods", instance="10.1.0.9:9153", pod="coredns-1"': None,
    },
    "servicemonitor": {
        'job="intake", instance="10.1.0.5:8000", service="intake", endpoint="http"': "intake",
        'job="router", instance="10.1.0.6:8001", service="router", endpoint="http"': "router",
        'job="metrics", instance="10.1.0.7:8002", service="metrics", endpoint="http"': "metrics",
        'job="kube-dns", instance="10.1.0.9:9153", service="kube-dns", endpoint="metrics"': None,
    },
}


def with_service(target: str, service: str) -> str:
    """The target's labels and the service's own label (a ServiceMonitor's target has it already)."""
    return target if "service=" in target else f'{target}, service="{service}"'


@pytest.mark.parametrize("scrape", sorted(SCRAPES))
def test_targets_up_shows_each_instance_of_our_services_whatever_the_scrape_jobs(
    tmp_path: Path, scrape: str
) -> None:
    # It selected up{job=~"intake|router|metrics"}: empty under annotation-based scraping. The
    # router is down for the last 10 minutes (its series stale since): it must show as 0, not go.
    targets = SCRAPES[scrape]
    series: dict[str, str] = {}
    for target, service in targets.items():
        down = service == "router"
        series[f"up{{{target}}}"] = "1x20 0x10" if down else "1x30"
        if service is not None:
            series[f'service_info{{{with_service(target, service)}, version="1.4.0"}}'] = (
                "1x20 stale" if down else "1x30"
            )
    expected = [
        {"labels": "{" + with_service(target, service) + "}", "value": 0 if service == "router" else 1}
        for target, service in targets.items()
        if service is not None
    ]
    assert_evaluates(tmp_path, panel_expr("Targets up"), series, "30m", expected)
