"""The Kubernetes manifests agree with the code: every variable they set is a setting of the
service that gets it, probes ask the ports the settings give, the services run as the runtime
role and never migrate, the migration runs as the owner, the images are pinned, the pods are
locked down, and KEDA never runs more orchestrator processes than there are partitions."""

from __future__ import annotations

import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

import pytest

from contracts.topology import Topology
from services.common.loader import load_function_apps
from services.operations.broker_definitions import user_names
from tests.deploy.manifests import (
    ROOT,
    base,
    config,
    container,
    deployment,
    overlay_namespace,
)
from tests.deploy.settings_names import BROKER_PASSWORDS, any_service_settings, service_settings

SERVICES = ["orchestrator", "activities", "client"]
PORTS = {"orchestrator": 7072, "activities": 7073, "client": 7071}
PORT_SETTINGS = {
    "orchestrator": "DF_ORCHESTRATOR_OBSERVABILITY_PORT",
    "activities": "DF_ACTIVITIES_OBSERVABILITY_PORT",
    "client": "DF_HTTP_PORT",
}
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def env(resource: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container(resource).get("env", [])}


def value(resource: dict[str, Any], name: str) -> str:
    return str(env(resource)[name]["value"])


def jobs() -> list[dict[str, Any]]:
    return [doc for (kind, _), doc in base().items() if kind == "Job"]


def pod_specs() -> list[dict[str, Any]]:
    kinds = ("Deployment", "Job")
    return [doc["spec"]["template"]["spec"] for (kind, _), doc in base().items() if kind in kinds]


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_a_service_gets_is_one_of_its_settings(service: str) -> None:
    names = set(env(deployment(service))) | set(config())
    helpers = {name for name in names if not name.startswith("DF_")}

    assert helpers <= {"BROKER_PASSWORD", "DATABASE_PASSWORD"}
    assert names - helpers - service_settings(service) == set()


def test_the_shared_settings_are_settings_and_the_jobs_variables_too() -> None:
    assert set(config()) <= any_service_settings()
    for job in jobs():
        for each in [*job["spec"]["template"]["spec"].get("initContainers", []), container(job)]:
            set_here = {item["name"] for item in each.get("env", [])}
            dfs = {name for name in set_here if name.startswith("DF_")}
            assert dfs <= any_service_settings() | BROKER_PASSWORDS


@pytest.mark.parametrize("resource", pod_specs(), ids=lambda spec: spec["containers"][0]["name"])
def test_a_variable_is_defined_before_another_refers_to_it(resource: dict[str, Any]) -> None:
    for each in resource.get("initContainers", []) + resource["containers"]:
        defined: set[str] = set()
        for item in each.get("env", []):
            assert set(REFERENCE.findall(item.get("value", ""))) <= defined, item["name"]
            defined.add(item["name"])
        for argument in each.get("command", []) + each.get("args", []):
            assert set(REFERENCE.findall(argument)) <= defined, argument


@pytest.mark.parametrize("service", SERVICES)
def test_probes_ask_livez_and_readyz_on_the_port_the_settings_give(service: str) -> None:
    spec = container(deployment(service))
    port = PORTS[service]

    assert value(deployment(service), PORT_SETTINGS[service]) == str(port)
    assert spec["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert [p["containerPort"] for p in spec["ports"]] == [port]
    annotations = deployment(service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    if service != "client":
        assert value(deployment(service), "DF_OBSERVABILITY_HOST") == "0.0.0.0"


@pytest.mark.parametrize("service", SERVICES)
def test_services_run_as_their_own_broker_user_and_the_runtime_role(service: str) -> None:
    namespace = config()["DF_NAMESPACE"]
    amqp = urlsplit(value(deployment(service), "DF_AMQP_URL"))
    database = urlsplit(value(deployment(service), "DF_DATABASE_URL"))
    cluster = base()[("Cluster", "durable-postgres")]["spec"]
    runtime_roles = [role["name"] for role in cluster["managed"]["roles"]]

    assert amqp.username == user_names(namespace)[service]
    assert amqp.hostname == "durable-rabbitmq"
    assert database.username in runtime_roles
    assert database.username != cluster["bootstrap"]["initdb"]["owner"]
    assert database.hostname == "durable-postgres-rw"
    assert "sslmode=verify-full" in database.query
    assert "DF_MIGRATE_ON_START" not in env(deployment(service)) | config()


def test_the_migration_runs_as_the_owner_and_grants_the_runtime_role() -> None:
    job = base()[("Job", "durable-migrate")]
    cluster = base()[("Cluster", "durable-postgres")]["spec"]
    command = container(job)["command"]
    runtime_role = command[command.index("--runtime-role") + 1]

    assert command[:3] == ["python", "-m", "services.common.migrate"]
    assert runtime_role == cluster["managed"]["roles"][0]["name"]
    url = urlsplit(value(job, "DF_DATABASE_URL"))
    assert url.username == cluster["bootstrap"]["initdb"]["owner"]
    assert url.path == f"/{cluster['bootstrap']['initdb']['database']}"


def test_every_image_is_pinned_and_ours_carries_the_package_version() -> None:
    images = [
        each["image"]
        for (kind, _), doc in base().items()
        if kind in ("Deployment", "Job")
        for each in doc["spec"]["template"]["spec"]["containers"]
        + doc["spec"]["template"]["spec"].get("initContainers", [])
    ]
    images += [base()[("RabbitmqCluster", "durable-rabbitmq")]["spec"]["image"]]
    images += [base()[("Cluster", "durable-postgres")]["spec"]["imageName"]]
    for image in images:
        assert re.search(r":v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$", image), f"{image}: not pinned"
    ours = {image for image in images if image.startswith("durable-rabbit:")}
    assert ours == {f"durable-rabbit:{VERSION}"}
    overlay = (ROOT / "deploy/k8s/overlays/example/kustomization.yaml").read_text()
    assert f"newTag: {VERSION}" in overlay


@pytest.mark.parametrize("spec", pod_specs(), ids=lambda spec: spec["containers"][0]["name"])
def test_pods_run_as_non_root_on_a_read_only_root_with_tmp_writable(spec: dict[str, Any]) -> None:
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for each in spec["containers"] + spec.get("initContainers", []):
        assert each["securityContext"]["readOnlyRootFilesystem"] is True
        assert each["securityContext"]["allowPrivilegeEscalation"] is False
        assert each["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert each["resources"]["requests"]
        assert each["resources"]["limits"]["memory"]
        if each["image"].startswith("durable-rabbit:"):
            [tmp] = [m for m in each["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_disruption_budget(service: str) -> None:
    budget = base()[("PodDisruptionBudget", f"durable-{service}")]["spec"]
    labels = deployment(service)["spec"]["template"]["metadata"]["labels"]

    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= labels.items()


def scaled_object(service: str) -> dict[str, Any]:
    return dict(base()[("ScaledObject", f"durable-{service}")]["spec"])


def test_keda_never_runs_more_orchestrator_processes_than_partitions() -> None:
    spec = scaled_object("orchestrator")
    processes = int(value(deployment("orchestrator"), "DF_ORCHESTRATOR_PROCESSES"))

    assert spec["minReplicaCount"] >= 1  # the timers and the outbox need one
    assert spec["maxReplicaCount"] * processes <= int(config()["DF_PARTITIONS"])
    assert "replicas" not in deployment("orchestrator")["spec"]
    assert "replicas" not in deployment("activities")["spec"]


def test_keda_counts_the_partition_queues_and_the_activity_queues_without_their_dlqs() -> None:
    topology = Topology(
        namespace=config()["DF_NAMESPACE"], partitions=int(config()["DF_PARTITIONS"])
    )
    activities = load_function_apps(config()["DF_FUNCTION_MODULES"].split(",")).activities
    partitions = [topology.partition_queue(p) for p in range(topology.partitions)]
    activity_queues = [topology.activity_queue(name) for name in activities]
    every_queue = partitions + activity_queues
    every_queue += [f"{queue}.dlq" for queue in every_queue] + ["other.activity.x", "df.dlx"]

    def selected(service: str) -> list[str]:
        [trigger] = scaled_object(service)["triggers"]
        assert trigger["metadata"]["useRegex"] == "true"
        assert trigger["metadata"]["operation"] == "sum"
        return [q for q in every_queue if re.search(trigger["metadata"]["queueName"], q)]

    assert selected("orchestrator") == partitions
    assert selected("activities") == activity_queues


def test_keda_reaches_the_broker_in_the_overlays_namespace() -> None:
    for service in ("orchestrator", "activities"):
        [trigger] = scaled_object(service)["triggers"]
        host = urlsplit(trigger["metadata"]["host"]).hostname
        assert host == f"durable-rabbitmq.{overlay_namespace()}.svc"


def secret_names(node: Any) -> set[str]:
    """Every Secret a resource reads: key and env references, volumes, the operators' refs."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, item in node.items():
            if key in ("secretKeyRef", "secretRef", "passwordSecret") or (
                key == "secret" and "name" in item
            ):
                found.add(item["name"])
            elif key == "secret":
                found.add(item["secretName"])
            elif key == "secretTargetRef":
                found |= {ref["name"] for ref in item}
            else:
                found |= secret_names(item)
    elif isinstance(node, list):
        for item in node:
            found |= secret_names(item)
    return found


def test_the_secrets_read_are_the_ones_the_readme_creates_or_the_operators_make() -> None:
    readme = (ROOT / "deploy/k8s/README.md").read_text()
    made_by_operators = {"durable-rabbitmq-default-user", "durable-postgres-ca"}
    secrets = secret_names(list(base().values()))

    assert made_by_operators < secrets
    for secret in secrets - made_by_operators:
        assert f"create secret generic {secret}" in readme, secret


def test_the_readmes_commands_name_labels_and_objects_the_manifests_have() -> None:
    readme = (ROOT / "deploy/k8s/README.md").read_text()
    labels = {
        doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        for doc in base().values()
    }
    selected = re.findall(r"component=(\w+)", readme)
    for group in re.findall(r"component in \(([\w,]+)\)", readme):
        selected += group.split(",")
    assert set(selected) <= labels
    assert {"data", "migration", "config"} <= set(selected)
    named = {(kind.lower(), name) for kind, name in base()}
    for kind, name in re.findall(r"\b(job|deployment|rabbitmqcluster)/(durable-[a-z-]+)", readme):
        assert (kind, name) in named, f"{kind}/{name}"
