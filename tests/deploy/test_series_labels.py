"""The labels the alerts and the dashboard select, group by and print exist on their series, and
the values they match (services, route templates, scrape jobs, fixed vocabularies) can occur.

tests/unit/metrics_service/test_deploy_files.py checks the metric names; a label no service
exports passes that check, and PromQL does not complain either: a matcher on it selects nothing,
`by (label)` collapses every series into one, a legend or `$labels.x` prints empty. Each label is
checked against the label names the code declares for that family (every registered metric, and
the backlog collector's families as the metrics service renders them, with their partition label).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

# The services' apps import every module that registers a metric family.
import services.intake.app
import services.metrics.app
import services.router.app  # noqa: F401
from services.intake.app import create_app as intake_app
from services.metrics.app import create_app as metrics_app
from services.metrics.backlog import BacklogState
from services.metrics.backlog.collector import render
from services.metrics.backlog.config import BREACH_KINDS
from services.router.app import create_app as router_app
from shared.http.health import HTTP_SECONDS, SERVICE_INFO
from shared.kafka.consumer import DEAD_LETTER_KINDS
from shared.kafka.continuity import OUTCOMES
from tests.deploy.conftest import DEPLOY
from tests.unit.backlog.helpers import at, envelope, make_state

ALERTS = DEPLOY / "prometheus/alerts.yml"
DASHBOARD = DEPLOY / "grafana/dashboards/ticket-router.json"
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"instance", "job"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
GROUPING = re.compile(r"\b(?:sum|max|min|avg|count)\s+(by|without)\s*\(([^)]*)\)\s*\(")
SELECTOR = re.compile(rf"({NAME})\s*\{{([^}}]*)\}}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def backlog_families() -> dict[str, set[str]]:
    """The backlog collector's families as a metrics instance renders them (partitioned shards)."""
    state = BacklogState()
    ticket = make_state("z:1", 0, team="billing", routed=30, fr_due=600, res_due=7200, responded=60)
    state.apply(envelope(ticket, 60), at(60))
    solved = make_state("z:1", 0, team="billing", status="solved", resolved=900)
    state.apply(envelope(solved, 900), at(900))
    snap = state.snapshot()
    partitioned = dataclasses.replace(snap, partitioned=True, partitions=[(0, snap)])
    families: dict[str, set[str]] = {}
    for family in render(partitioned, state.config):
        names = families.setdefault(family.name, set())
        for sample in family.samples:
            names |= set(sample.labels) - {"le"}
        kind = "histogram" if family.type in {"histogram", "gaugehistogram"} else family.type
        for suffix in SUFFIXES.get(kind, ()):
            families[family.name + suffix] = names
        if family.type == "gaugehistogram":
            families |= {f"{family.name}_bucket": names, f"{family.name}_gcount": names}
            families[f"{family.name}_gsum"] = names
    return families


def registered_families() -> dict[str, set[str]]:
    families: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        name, labels, kind = (getattr(collector, a, None) for a in ("_name", "_labelnames", "_type"))
        if name is None or labels is None:
            continue  # the process and platform collectors: nothing of ours
        for suffix in ("", *SUFFIXES.get(str(kind), ())):
            families[name + suffix] = set(labels)
    return families


def known_labels() -> dict[str, set[str]]:
    """Label names (bar `le`) of every exported family, by series name."""
    families: dict[str, set[str]] = {"up": set()} | registered_families() | backlog_families()
    return {name: labels | TARGET_LABELS for name, labels in families.items()}


def argument(expr: str, start: int) -> str:
    """The parenthesised text opening at ``expr[start]`` (an aggregation's argument)."""
    depth = 0
    for i in range(start, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[start + 1 : i]
    raise AssertionError(f"unbalanced parentheses in {expr}")


def series(expr: str) -> list[str]:
    """The series names an expression selects (label values, durations and groupings removed)."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    words = re.findall(rf"({NAME})\s*(?=[{{)\[\s]|$)", bare)
    return [w for w in words if w in KNOWN]


OPERAND = re.compile(rf"{NAME}\s*(?:\{{[^}}]*\}})?\s*(?:\[[^\]]*\])?")


def left_operands(expr: str) -> str:
    """``expr`` without the right operands of its set filters (`unless`, `and`): the result has
    the left operand's labels only, the right one just says which of its series to keep."""
    out, i = [], 0
    for match in re.finditer(r"\b(?:unless|and)\b(?:\s*(?:on|ignoring)\s*\([^)]*\))?\s*", expr):
        if match.start() < i:
            continue  # inside a right operand already dropped
        out.append(expr[i : match.start()])
        i = match.end()
        operand = OPERAND.match(expr, i)
        if expr.startswith("(", i):
            i += len(argument(expr, i)) + 2
        elif operand is not None:
            i = operand.end()
    return "".join(out) + expr[i:]


def label_problems(expr: str) -> list[str]:
    expr = expr.replace("$team", "x")
    problems = []
    for name, matchers in SELECTOR.findall(expr):
        for label in MATCHER.findall(re.sub(r'"[^"]*"', '""', matchers)):
            if label not in KNOWN.get(name, {label}):
                problems.append(f"{name} has no label {label!r}")
    for match in GROUPING.finditer(expr):
        inner = series(left_operands(argument(expr, match.end() - 1)))
        for label in (word.strip() for word in match.group(2).split(",") if word.strip()):
            allowed = set.intersection(
                *(KNOWN[n] | ({"le"} if n.endswith("_bucket") else set()) for n in inner)
            )
            if label not in allowed:
                problems.append(f"{match.group(1)} ({label}) over {inner}: not a label of all of them")
    return problems


def output_labels(expr: str) -> set[str]:
    """Labels the result of an expression keeps: its outermost `by`, else those of its series."""
    bare = re.sub(r'"[^"]*"', '""', expr)
    if bare.lstrip().startswith("absent("):
        return {
            label for part in re.findall(r"\{([^}]*)\}", expr) for label in re.findall(r"(\w+)\s*=[^~]", part)
        }
    grouping = GROUPING.search(bare)
    if grouping is not None and grouping.group(1) == "by":
        return {w.strip() for w in grouping.group(2).split(",") if w.strip()}
    return set.intersection(*(KNOWN[n] for n in series(expr)))


KNOWN = known_labels()


def route_templates(routes: list[Any]) -> set[str]:
    """The path templates of ``routes``, those of included routers among them (FastAPI resolves
    those lazily: they have no ``path`` of their own)."""
    paths = set()
    for route in routes:
        if hasattr(route, "path"):
            paths.add(str(route.path))
        elif hasattr(route, "effective_route_contexts"):
            paths |= {str(context.path) for context in route.effective_route_contexts()}
        else:
            raise AssertionError(f"cannot tell the path of {route!r}")
    return paths


def known_values() -> dict[str, set[str]]:
    """The values some labels can take, by label (or series:label where the label's values depend
    on the series): the services, their route templates, the scrape jobs, fixed vocabularies."""
    apps = [intake_app(), router_app(), metrics_app()]  # each exports service_info when created
    routes = {path for app in apps for path in route_templates(app.routes)} | {"unmatched"}
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    return {
        "service": {labels[0] for labels in SERVICE_INFO._metrics},
        "route": routes - {""},
        "job": {job["job_name"] for job in scrape["scrape_configs"]},
        "consumer_offset_holes_total:outcome": set(OUTCOMES),
        "sla_breaches_total:kind": set(BREACH_KINDS),
        "dead_letters_total:reason": set(DEAD_LETTER_KINDS),
    }


VALUES = known_values()
VALUE_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def value_problems(expr: str) -> list[str]:
    """Matchers on a label of known values that can match none of them (a typo selects nothing;
    each alternative of a negative regex must name a real value, or it excludes nothing)."""
    problems = []
    for name, matchers in SELECTOR.findall(expr):
        for label, op, raw in VALUE_MATCHER.findall(matchers):
            known = VALUES.get(f"{name}:{label}", VALUES.get(label))
            if known is None:
                continue
            value = raw.encode().decode("unicode_escape")  # PromQL's string escapes
            if op in {"=", "!="}:
                dead = [] if value in known else [value]
            elif op == "=~":
                dead = [] if any(re.fullmatch(value, v) for v in known) else [value]
            else:
                dead = [alt for alt in value.split("|") if not any(re.fullmatch(alt, v) for v in known)]
            problems += [f"{name}{{{label}{op}...}}: {alt!r} matches no {label}" for alt in dead]
    return problems


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_the_checker_sees_labels_of_both_kinds_of_family() -> None:
    assert KNOWN["ticket_backlog_open"] == {"team", "priority", "instance", "job"}
    assert {"team", "kind", "partition"} <= KNOWN["sla_breaches_total"]
    assert "le" not in KNOWN["ticket_open_age_bucket"] and "team" in KNOWN["ticket_open_age_gsum"]
    assert KNOWN["http_request_duration_seconds_count"] >= {"service", "route", "status"}
    assert label_problems('sum by (team) (consumer_lag_messages{group="router"})') == [
        "by (team) over ['consumer_lag_messages']: not a label of all of them"
    ]
    assert label_problems('max(intake_outbox_depth{service="intake"})') == [
        "intake_outbox_depth has no label 'service'"
    ]
    # A set filter's right operand only selects: the left one's labels are what is grouped.
    lag = "consumer_lag_messages unless on (job, instance) (metrics_backlog_caught_up == 0)"
    assert label_problems(f"sum by (group) ({lag}) > 1000") == []
    assert label_problems("sum by (group) (metrics_backlog_caught_up and consumer_lag_messages)") == [
        "by (group) over ['metrics_backlog_caught_up']: not a label of all of them"
    ]
    assert {"intake", "router", "metrics"} <= VALUES["service"] and "/v1/webhooks/{name}/" in VALUES["route"]
    assert value_problems('rate(x{service="intake", route!~"/healthz|/readyz"}[5m])') == []
    assert value_problems('rate(x{service="intak", route!~"/health|/readyz"}[5m])') == [
        "x{service=...}: 'intak' matches no service",
        "x{route!~...}: '/health' matches no route",
    ]


def test_route_values_are_the_labels_the_timing_middleware_sets() -> None:
    # The label is the matched route's template, as the running app records it.
    client = TestClient(metrics_app())
    for path in ("/healthz", "/readyz", "/metrics", "/no-such-path"):
        client.get(path)
    recorded = {labels[2] for labels in HTTP_SECONDS._metrics if labels[0] == "metrics"}
    assert {"/healthz", "/readyz", "/metrics", "unmatched"} <= recorded <= VALUES["route"]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alert_labels_exist(rule: dict[str, Any]) -> None:
    assert not label_problems(rule["expr"]), label_problems(rule["expr"])
    assert not value_problems(rule["expr"]), value_problems(rule["expr"])
    kept = output_labels(rule["expr"])
    for text in rule["annotations"].values():
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in kept, f"{rule['alert']}: $labels.{label} is not a label of {sorted(kept)}"


@pytest.mark.parametrize("panel", panels(), ids=lambda p: p["title"])
def test_dashboard_labels_exist(panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        expr = target["expr"]
        assert not label_problems(expr), label_problems(expr)
        assert not value_problems(expr), value_problems(expr)
        kept = output_labels(expr.replace("$team", "x"))
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            assert label in kept, f"legend {{{{{label}}}}} is not a label of {sorted(kept)} in {expr}"


def test_team_variable_reads_an_existing_label() -> None:
    board = json.loads(DASHBOARD.read_text())
    (team,) = [v for v in board["templating"]["list"] if v["name"] == "team"]
    query = re.fullmatch(rf"label_values\(({NAME}),\s*(\w+)\)", team["definition"])
    assert query is not None, team["definition"]
    assert query.group(2) in KNOWN[query.group(1)]


def test_no_query_selects_our_services_by_scrape_job() -> None:
    # The job label is the scrape configuration's, not ours: the compose Prometheus names its jobs
    # after the services, but annotation-based Kubernetes scraping puts every pod under the
    # cluster's own job (kubernetes-pods, say), where `up{job=~"intake|router|metrics"}` showed
    # nothing. Our services are told apart by their own label (service_info's `service`).
    queries = [(rule["alert"], rule["expr"]) for rule in rules()]
    queries += [(panel["title"], target["expr"]) for panel in panels() for target in panel["targets"]]
    by_job = [
        f"{where}: {name}{{{matchers}}}"
        for where, expr in queries
        for name, matchers in SELECTOR.findall(expr)
        if "job" in MATCHER.findall(re.sub(r'"[^"]*"', '""', matchers))
    ]
    assert by_job == []
