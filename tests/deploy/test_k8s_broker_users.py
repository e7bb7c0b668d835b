"""The broker users the Kubernetes manifests load allow everything the services declare,
publish to and consume from.

The broker users job runs ``durable-ops broker-definitions`` with the deployment's ConfigMap
and the passwords Secret; this runs the same command with the same settings, and checks its
users against what each Deployment connects as, and its permissions against every access
the services' own declaration code makes under those settings (recorded as in
tests/unit/test_broker_permissions.py, whose recording channel and accesses are reused with
this deployment's topology and function modules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import tests.unit.test_broker_permissions as recorded
from contracts.permissions import Permissions
from contracts.topology import Topology
from durable.settings import CommonSettings
from services.common.loader import load_entry_points, load_function_apps
from tests.deploy.manifests import base, config, container, deployment
from tests.deploy.settings_names import BROKER_PASSWORDS

SERVICES = ["orchestrator", "activities", "client"]


def job_environment() -> dict[str, str]:
    """What the job's ``definitions`` container gets: the ConfigMap, then the Secret."""
    job = base()[("Job", "durable-broker-users")]["spec"]["template"]["spec"]
    [definitions] = job["initContainers"]
    assert {ref.get("configMapRef", {}).get("name") for ref in definitions["envFrom"]} >= {
        "durable-config"
    }
    assert {ref.get("secretRef", {}).get("name") for ref in definitions["envFrom"]} >= {
        "durable-broker-users"
    }
    passwords = {name: f"password-of-{name.lower()}" for name in BROKER_PASSWORDS}
    return {**config(), **passwords}


APPROVAL_CONFIG = {
    "DF_APPROVAL_HIERARCHY": json.dumps(
        {"levels": [{"stage": "manager", "approver": "mia"}, {"stage": "head", "approver": "hugo"}]}
    ),
    "DF_APPROVAL_BROKER_USERS": json.dumps({"hugo": "hugo@corp"}),
    "DF_APPROVAL_GATEWAY_USERS": "approvals-web",
}
"""A deployment's ConfigMap ``durable-approval``: two approvers, one mapped, a gateway."""
PUBLISHER_PASSWORDS = {
    name: f"password-of-{name.lower()}"
    for name in (
        "DF_BROKER_PASSWORD_SUBMITTER",
        "DF_BROKER_PASSWORD_USER_MIA",
        "DF_BROKER_PASSWORD_USER_HUGO_CORP",
        "DF_BROKER_PASSWORD_USER_APPROVALS_WEB",
    )
}
"""Their passwords, added to the Secret ``durable-broker-users``."""


def loaded_definitions(extra: dict[str, str] | None = None) -> dict[str, Any]:
    """What the job imports; ``extra``: more of its environment (ConfigMap, Secret)."""
    job = base()[("Job", "durable-broker-users")]["spec"]["template"]["spec"]
    [definitions] = job["initContainers"]
    command = definitions["command"][-1].split(">")[0].split()
    assert command[:2] == ["durable-ops", "broker-definitions"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DF_")}
    printed = subprocess.run(
        [sys.executable, "-m", "services.operations", *command[1:]],
        env={**environment, **job_environment(), **(extra or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(printed.stdout))


DEFINITIONS = loaded_definitions()


def permissions_of(user: str, definitions: dict[str, Any] = DEFINITIONS) -> Permissions:
    [granted] = [p for p in definitions["permissions"] if p["user"] == user]
    assert granted["vhost"] == "/"
    return Permissions(granted["configure"], granted["write"], granted["read"])


@pytest.fixture
def deployment_topology(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The recorded accesses, made under this deployment's settings instead of the unit
    test's own topology and test modules."""
    settings = CommonSettings(
        namespace=config()["DF_NAMESPACE"],
        partitions=int(config()["DF_PARTITIONS"]),
        function_modules=config()["DF_FUNCTION_MODULES"],
    )
    topology: Topology = settings.topology
    declared = load_entry_points(settings)
    monkeypatch.setattr(recorded, "TOPOLOGY", topology)
    monkeypatch.setattr(recorded, "DECLARED", declared)
    monkeypatch.setattr(
        recorded,
        "ACTIVITIES",
        sorted(load_function_apps(settings.function_modules.split(",")).activities),
    )
    monkeypatch.setattr(
        recorded, "WORKFLOW_EXCHANGES", [topology.workflow_name(e.name) for e in declared.exchanges]
    )
    return


def test_the_job_loads_one_user_per_service_and_the_operator() -> None:
    namespace = config()["DF_NAMESPACE"]
    users = {user["name"] for user in DEFINITIONS["users"]}

    assert users == {f"{namespace}-{role}" for role in [*SERVICES, "operator"]}
    assert all(user["password_hash"] for user in DEFINITIONS["users"])
    assert "password-of" not in json.dumps(DEFINITIONS)  # hashes only


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.usefixtures("deployment_topology")
async def test_the_loaded_user_of_a_service_allows_all_it_does(service: str) -> None:
    [url] = [
        e["value"] for e in container(deployment(service))["env"] if e["name"] == "DF_AMQP_URL"
    ]
    user = urlsplit(url).username
    assert user is not None
    accesses = await recorded.ACCESSES[service]()

    assert len(accesses) > 50
    assert recorded.refused(permissions_of(user), accesses) == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_loaded_users_reach_nothing_outside_the_namespace(service: str) -> None:
    namespace = config()["DF_NAMESPACE"]
    granted = permissions_of(f"{namespace}-{service}")
    others = [f"{namespace}x.orchestrator.p01", "other.activity.x", "amq.default", "durable.timers"]

    for right in ("configure", "write", "read"):
        assert [name for name in others if granted.allows(right, name)] == []


def test_the_job_and_the_services_read_the_approval_settings_from_one_optional_config_map() -> None:
    job = base()[("Job", "durable-broker-users")]["spec"]["template"]["spec"]
    [definitions] = job["initContainers"]
    readers = [definitions, container(deployment("client")), container(deployment("activities"))]

    for reader in readers:
        assert {"name": "durable-approval", "optional": True} in [
            ref.get("configMapRef") for ref in reader["envFrom"]
        ]


def test_the_job_defines_the_submitter_approvers_and_gateways_when_configured() -> None:
    namespace = config()["DF_NAMESPACE"]
    definitions = loaded_definitions({**APPROVAL_CONFIG, **PUBLISHER_PASSWORDS})
    submissions = f"{namespace}.approval.submissions"
    responses = f"{namespace}.approval.responses"
    services = {f"{namespace}-{role}" for role in [*SERVICES, "operator"]}
    publishers = {
        f"{namespace}-submitter": submissions,
        "mia": responses,
        "hugo@corp": responses,
        "approvals-web": responses,
    }

    assert {user["name"] for user in definitions["users"]} == services | set(publishers)
    for user, exchange in publishers.items():
        granted = permissions_of(user, definitions)
        assert (granted.configure, granted.read) == ("", "")
        assert granted.allows("write", exchange)
        others = [submissions, responses, "amq.default", f"{namespace}.orchestrator"]
        assert [name for name in others if granted.allows("write", name)] == [exchange]
