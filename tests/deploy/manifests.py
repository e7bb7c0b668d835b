"""deploy/k8s read as the API server would receive it: every resource file's documents, and the
example overlay rendered by kustomize (``kubectl kustomize``, where kubectl is installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example"
SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.json",
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
}
Resource = dict[str, Any]


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def resource_files() -> list[Path]:
    """Every file a kustomization lists under ``resources`` (the overlay's too)."""
    files: list[Path] = []
    for kustomization in kustomizations():
        for entry in yaml.safe_load(kustomization.read_text()).get("resources", []):
            path = (kustomization.parent / entry).resolve()
            if path.is_file():
                files.append(path)
    return sorted(set(files))


def documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def base() -> dict[tuple[str, str], Resource]:
    """The base's resources by kind and name."""
    found: dict[tuple[str, str], Resource] = {}
    for path in resource_files():
        for doc in documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def deployment(name: str) -> Resource:
    return base()[("Deployment", f"durable-{name}")]


def container(resource: Resource) -> dict[str, Any]:
    [only] = resource["spec"]["template"]["spec"]["containers"]
    return dict(only)


def config() -> dict[str, str]:
    return dict(base()[("ConfigMap", "durable-config")]["data"])


def overlay_namespace() -> str:
    return str(yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())["namespace"])


@cache
def rendered() -> list[Resource] | None:
    """The example overlay as ``kubectl kustomize`` builds it; None without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    built = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def custom_schema(api_version: str, kind: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / CUSTOM_SCHEMAS[(api_version, kind)]).read_text()))
