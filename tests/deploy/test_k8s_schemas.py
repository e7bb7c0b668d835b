"""Every manifest under deploy/k8s against its schema: Kubernetes' own kinds against the schemas
kubernetes-validate bundles, strictly (an unknown field fails), for the oldest and newest
Kubernetes we claim; the operators' custom resources against our schemas of the fields we use
(tests/deploy/schemas/README.md says why they are ours). No cluster runs here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

from tests.deploy.manifests import (
    CUSTOM_SCHEMAS,
    K8S,
    SCHEMAS,
    custom_schema,
    documents,
    kustomizations,
    rendered,
    resource_files,
)

KUBERNETES_VERSIONS = ["1.31", "1.37"]


def registry() -> referencing.Registry[Any]:
    resources = [
        (path.name, referencing.Resource.from_contents(yaml.safe_load(path.read_text())))
        for path in SCHEMAS.glob("*.json")
    ]
    return referencing.Registry().with_resources(resources)


def validate(doc: dict[str, Any], version: str) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CUSTOM_SCHEMAS:
        jsonschema.Draft202012Validator(custom_schema(*key), registry=registry()).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", resource_files(), ids=lambda path: str(path.relative_to(K8S)))
def test_every_resource_is_valid(path: Path, version: str) -> None:
    docs = documents(path)

    assert docs
    for doc in docs:
        validate(doc, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_rendered_overlay_is_valid(version: str) -> None:
    built = rendered()
    if built is None:
        pytest.skip("kubectl is not installed: the overlay's patches are checked by name only")
    kinds = sorted(doc["kind"] for doc in built)
    assert kinds.count("Deployment") == 3
    for doc in built:
        validate(doc, version)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "durable"


def test_our_schemas_refuse_a_field_the_operator_does_not_know() -> None:
    doc = next(d for p in resource_files() for d in documents(p) if d["kind"] == "Cluster")
    wrong = {**doc, "spec": {**doc["spec"], "instance": 3}}

    with pytest.raises(jsonschema.ValidationError, match="instance"):
        validate(wrong, KUBERNETES_VERSIONS[-1])


def test_kubernetes_validate_refuses_an_unknown_field() -> None:
    doc = next(d for p in resource_files() for d in documents(p) if d["kind"] == "Deployment")
    wrong = {**doc, "spec": {**doc["spec"], "replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong, KUBERNETES_VERSIONS[-1])


@pytest.mark.parametrize("path", kustomizations(), ids=lambda path: str(path.relative_to(K8S)))
def test_every_file_a_kustomization_names_exists(path: Path) -> None:
    kustomization = yaml.safe_load(path.read_text())
    for entry in kustomization.get("resources", []) + kustomization.get("components", []):
        assert (path.parent / entry).exists(), f"{path}: {entry}"
    for patch in kustomization.get("patches", []):
        target = yaml.safe_load(patch["patch"])
        names = {
            (doc["kind"], doc["metadata"]["name"]) for p in resource_files() for doc in documents(p)
        }
        assert (target["kind"], target["metadata"]["name"]) in names
