"""deploy/k8s: rendered with kustomize, validated against the Kubernetes schemas, and checked for
the facts operations rely on (probes, non-root, migrations first, settings names, replicas)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from shared.kafka.runner import CONSUMER_CLOSE_TIMEOUT_S, DRAIN_TIMEOUT_S
from shared.runtime import ENGINE_CLOSE_TIMEOUT_S, HTTP_SHUTDOWN_TIMEOUT_S, PRODUCER_CLOSE_TIMEOUT_S
from tests.deploy.conftest import K8S, SERVICES, Manifest, env_names, find, one, read_env_file

KUBERNETES_VERSION = "1.30.0"  # the oldest minor we support; newer ones accept these manifests too
Render = Callable[[str], list[Manifest]]


def validate(manifest: Manifest) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def base_documents() -> list[Manifest]:
    """The base's resource files as written (no kustomize needed)."""
    kustomization = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    documents = []
    for resource in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((K8S / "base" / resource).read_text()) if doc]
    return documents


def test_every_base_file_is_valid_without_kustomize() -> None:
    documents = base_documents()
    assert {d["kind"] for d in documents} >= {"Deployment", "Service", "PodDisruptionBudget", "Job"}
    for document in documents:
        validate(document)


def test_the_validator_rejects_a_broken_manifest() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = copy.deepcopy(find(base_documents(), "Deployment", "router")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", ["base", "overlays/production"])
def test_rendered_manifests_are_valid(render: Render, kustomization: str) -> None:
    manifests = render(kustomization)
    for manifest in manifests:
        validate(manifest)
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == "ticket-router"
        assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ticket-router"


def test_servicemonitor_is_an_optional_component(render: Render, k8s_tree: Path) -> None:
    assert not find(render("overlays/production"), "ServiceMonitor"), "clusters without the CRD must apply"
    with_operator = k8s_tree / "overlays/with-servicemonitor"
    with_operator.mkdir()
    (with_operator / "kustomization.yaml").write_text(
        "resources: [../production]\ncomponents: [../../components/servicemonitor]\n"
    )
    manifests = render("overlays/with-servicemonitor")
    monitor = one(manifests, "ServiceMonitor", "ticket-router")
    assert monitor["metadata"]["namespace"] == "ticket-router"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    for name in SERVICES:
        service = one(manifests, "Service", name)
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
        # Scraped once: a Prometheus that also keeps annotated pods would see every series twice
        # (two jobs), and each sum by (team) would count the backlog double.
        annotations = one(manifests, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "false", name
        assert (
            one(render("overlays/production"), "Deployment", name)["spec"]["template"]["metadata"][
                "annotations"
            ]["prometheus.io/scrape"]
            == "true"
        )


@pytest.mark.parametrize("name", list(SERVICES))
def test_deployment_probes_security_and_settings(render: Render, name: str) -> None:
    settings_class, port = SERVICES[name]
    manifests = render("base")
    deployment = one(manifests, "Deployment", name)
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["args"] == [name]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    for box in [*spec["initContainers"], container]:
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(box["resources"]["requests"]) and "memory" in box["resources"][
            "limits"
        ]
    (wait,) = spec["initContainers"]
    assert wait["args"][0] == "ticket-router-wait-for-schema"

    config = one(manifests, "ConfigMap", container["envFrom"][0]["configMapRef"]["name"])
    secret = one(manifests, "Secret", container["envFrom"][1]["secretRef"]["name"])
    names = set(config["data"]) | set(secret["data"]) | {e["name"] for e in container["env"]}
    assert names <= env_names(settings_class), f"not settings of {name}: {names - env_names(settings_class)}"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {f"{name.upper()}_HOST": "0.0.0.0", f"{name.upper()}_PORT": str(port)}

    service = one(manifests, "Service", name)
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    budget = one(manifests, "PodDisruptionBudget", name)
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


# The longest a service takes to stop after SIGTERM, each step bounded in the code: requests in
# flight, the consumer's batch in hand and its commit, leaving the group, then the producer and the
# pool closed side by side. A grace period below it kills a service mid-close in the worst case.
SHUTDOWN_BUDGET_S = (
    HTTP_SHUTDOWN_TIMEOUT_S
    + DRAIN_TIMEOUT_S
    + CONSUMER_CLOSE_TIMEOUT_S
    + max(PRODUCER_CLOSE_TIMEOUT_S, ENGINE_CLOSE_TIMEOUT_S)
)


def pre_stop_seconds(container: Manifest) -> float:
    """The preStop hook's sleep (the grace period counts it): ``time.sleep(N)`` in its command."""
    hook = container.get("lifecycle", {}).get("preStop")
    if hook is None:
        return 0.0
    command = " ".join(hook["exec"]["command"])
    start = command.index("time.sleep(") + len("time.sleep(")
    return float(command[start : command.index(")", start)])


@pytest.mark.parametrize("name", list(SERVICES))
def test_the_grace_period_covers_the_worst_case_shutdown(render: Render, name: str) -> None:
    spec = one(render("base"), "Deployment", name)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    needed = pre_stop_seconds(container) + SHUTDOWN_BUDGET_S
    assert spec["terminationGracePeriodSeconds"] >= needed, f"{name}: needs {needed:.0f} s to stop"


def test_migration_job_runs_ticketctl_migrate(render: Render) -> None:
    manifests = render("base")
    job = one(manifests, "Job", "ticket-router-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["ticketctl", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    secret_names = {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref}
    assert secret_names == {one(manifests, "Secret", name)["metadata"]["name"] for name in secret_names}


def test_production_replicas_fit_the_partitions(render: Render) -> None:
    manifests = render("overlays/production")
    config = find(manifests, "ConfigMap")[0]["data"]
    partitions = int(config["TOPIC_PARTITIONS"])
    assert config["TOPIC_REPLICATION_FACTOR"] == "3"
    assert one(manifests, "Deployment", "router")["spec"]["replicas"] == 3 <= partitions
    assert one(manifests, "Deployment", "metrics")["spec"]["replicas"] == 2 <= partitions
    intake = one(manifests, "Deployment", "intake")
    assert "replicas" not in intake["spec"], "the HorizontalPodAutoscaler owns intake's replica count"
    hpa = one(manifests, "HorizontalPodAutoscaler", "intake")
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] >= 2
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "intake"}


def test_secrets_stay_out_of_git() -> None:
    gitignore = (K8S.parent / ".gitignore").read_text().split()
    assert "k8s/**/secrets.env" in gitignore
    example = read_env_file(K8S / "base/secrets.env.example")
    assert set(example) == {"DATABASE_URL"} and example["DATABASE_URL"].startswith("postgresql+asyncpg://")
    config = read_env_file(K8S / "base/config.env")
    assert not {"DATABASE_URL", "ADMIN_API_KEY"} & set(config), "secrets belong in the Secret"
