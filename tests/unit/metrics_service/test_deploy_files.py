"""The Prometheus rules and the Grafana dashboard: valid, tested, and only about metrics we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

# The services' apps import every module that registers a metric family (the escalation scanner's
# among them): the families whose names we check, whatever else this test run imported before.
import services.intake.app
import services.metrics.app
import services.router.app  # noqa: F401
import shared.http.health
import shared.kafka.consumer  # noqa: F401
from services.metrics.backlog import BacklogCollector, BacklogState
from tests.unit.backlog.helpers import at, envelope, make_state

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "deploy/prometheus/alerts.yml"
DASHBOARD = REPO / "deploy/grafana/dashboards/ticket-router.json"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (CI installs it)"
)
PROMTOOL = "promtool"

# PromQL words that are not metric names.
PROMQL = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "rate",
    "increase",
    "deriv",
    "absent",
    "histogram_quantile",
    "avg_over_time",
    "last_over_time",
    "time",
    "le",
    "bool",
    "offset",
}


def sample_exposition() -> str:
    state = BacklogState()
    st = make_state("z:1", 0, team="billing", routed=30, fr_due=600, res_due=7200, responded=60)
    state.apply(envelope(st, 60), at(60))
    state.apply(envelope(make_state("z:1", 0, team="billing", status="solved", resolved=900), 900), at(900))
    registry = CollectorRegistry()
    registry.register(BacklogCollector(state, clock=None))
    return generate_latest(registry).decode() + generate_latest(REGISTRY).decode()


def exported_names() -> set[str]:
    names = {"up"}
    for line in sample_exposition().splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            if kind == "counter":
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # strings (label values)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # labels
    return {w for w in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr) if w not in PROMQL}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def test_dashboard_structure() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 36 and board["uid"] == "ticket-router"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["DS_PROMETHEUS"]["type"] == "datasource"
        and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    )
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in (
        "open by team",
        "overdue",
        "at risk",
        "age distribution",
        "oldest",
        "sla breaches",
        "inflow",
        "time to clear",
        "agents needed",
        "routed",
        "time to route",
        "targets up",
        "caught up",
        "consumer lag",
        "dead letters",
        "intake requests",
        "latency",
        "5xx",
    ):
        assert topic in titles, topic
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip()
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_dashboard_and_alerts_only_use_exported_metrics() -> None:
    known = exported_names()
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for expr in [*dashboard_exprs(), *(r["expr"] for r in rules)]:
        unknown = metric_names(expr.replace("$team", ".*")) - known
        assert not unknown, f"{unknown} in {expr}"
    # The age distribution is exported and charted under the name operators know.
    assert "ticket_open_age_bucket" in known
    assert any("ticket_open_age_bucket" in e for e in dashboard_exprs())


def test_alerts_have_severity_annotations_and_for() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {
        "BacklogGrowing",
        "SlaBreachRateHigh",
        "OldestTicketTooOld",
        "ConsumerLagHigh",
        "DeadLettersPresent",
        "ServerErrors",
        "ServiceAbsent",
        "WebhooksRejected",
        "OutboxNotDraining",
        "ServiceDown",
    } <= names
    for rule in rules:
        assert "for" in rule and rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    checked = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "tests/alerts_test.yml"],
        capture_output=True,
        text=True,
        cwd=ALERTS.parent,
    )
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


@needs_promtool
def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    # promtool has no "check expr": each expression becomes a recording rule, which it parses.
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": e.replace("$team", ".*")}
        for i, e in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_promtool_lints_the_exposition_clean() -> None:
    linted = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=sample_exposition(), capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
