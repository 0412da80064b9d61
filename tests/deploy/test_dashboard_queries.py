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
