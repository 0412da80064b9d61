"""Fixtures of the offline deployment checks: the compose file, rendered kustomizations, tools."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from shared.settings import CommonSettings, IntakeSettings, MetricsSettings, RouterSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
SERVICES: dict[str, tuple[type[CommonSettings], int]] = {
    "intake": (IntakeSettings, 8000),
    "router": (RouterSettings, 8001),
    "metrics": (MetricsSettings, 8002),
}
Manifest = dict[str, Any]


def env_names(settings_class: type[CommonSettings]) -> set[str]:
    """The environment variables a settings class reads (no env_prefix: the upper-cased field names)."""
    return {name.upper() for name in settings_class.model_fields}


def load_script(name: str) -> ModuleType:
    """Import one of deploy/docker/*.py (not a package: they are copied into the image as scripts)."""
    path = DEPLOY / "docker" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"deploy_docker_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="session")
def k8s_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s whose git-ignored secrets.env is made from the committed example."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))
    example = (tree / "base" / "secrets.env.example").read_text()
    (tree / "base" / "secrets.env").write_text(example)
    return tree


@pytest.fixture(scope="session")
def render(k8s_tree: Path) -> Callable[[str], list[Manifest]]:
    """Render a kustomization (path relative to deploy/k8s) with kustomize or kubectl's built-in one."""
    command = kustomize_command()
    cache: dict[str, list[Manifest]] = {}

    def run(relative: str) -> list[Manifest]:
        if command is None:
            pytest.skip("neither kustomize nor kubectl (with kustomize built in) is installed")
        if relative not in cache:
            result = subprocess.run(
                [*command, str(k8s_tree / relative)], capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            cache[relative] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        return cache[relative]

    return run


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            pairs[match.group(1)] = match.group(2)
    return pairs


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=60, env={**os.environ}
    )
    return probe.returncode == 0
