"""docker-compose.yml as the guide promises it: every long-running service health-checked, the
data in named volumes, pinned and supported images, Postgres and RabbitMQ inside the compose
network unless docker-compose.ports.yml is added, no default password, and the variables the
guide's commands set are the ones compose requires. Docker does not run here: these read the
files (`make deploy-check` also validates them against the compose specification's schema)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.settings_names import any_service_settings, service_settings

ROOT = Path(__file__).parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
PORTS: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.ports.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ONE_SHOT = {"migrate"}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<how>:?[-?])?(?P<rest>[^}]*)\}")
GUIDES = [ROOT / "README.md", ROOT / "docs" / "guide" / "getting-started.md"]


def required_variables() -> set[str]:
    return {m["name"] for m in VARIABLE.finditer(COMPOSE_TEXT) if m["how"] == ":?"}


def image_version(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(-[a-z0-9.-]+)?", tag)
    assert match, f"{image}: not pinned to a release (major.minor[.patch][-variant])"
    return tuple(int(part or 0) for part in match.groups()[:3])


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    assert SERVICES[name]["healthcheck"]["test"]


def test_the_services_start_after_the_migrations_have_run() -> None:
    assert "DF_MIGRATE_ON_START" not in SERVICES["migrate"]["environment"]
    assert SERVICES["migrate"]["command"][:3] == ["python", "-m", "services.common.migrate"]
    for name in ("orchestrator", "activities", "client"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == depends["rabbitmq"] == {"condition": "service_healthy"}
        assert "DF_MIGRATE_ON_START" not in SERVICES[name]["environment"]


@pytest.mark.parametrize(
    ("service", "port"),
    [("orchestrator", 7072), ("activities", 7073), ("client", 7071)],
)
def test_healthchecks_ask_readyz_on_the_port_the_settings_give(service: str, port: int) -> None:
    from services.activities.settings import ActivitiesSettings
    from services.client.settings import ClientSettings
    from services.orchestrator.settings import OrchestratorSettings

    defaults = {
        "orchestrator": OrchestratorSettings.model_fields["orchestrator_observability_port"],
        "activities": ActivitiesSettings.model_fields["activities_observability_port"],
        "client": ClientSettings.model_fields["http_port"],
    }
    assert defaults[service].default == port
    check = " ".join(SERVICES[service]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check
    if service != "client":  # whose port is its HTTP API's, DF_HTTP_HOST
        assert SERVICES[service]["environment"]["DF_OBSERVABILITY_HOST"] == "0.0.0.0"


def test_postgres_and_rabbitmq_are_reachable_only_inside_the_network_unless_asked() -> None:
    assert "ports" not in SERVICES["postgres"]
    assert "ports" not in SERVICES["rabbitmq"]
    published = [p for s in PORTS["services"].values() for p in s["ports"]]
    assert sorted(PORTS["services"]) == ["postgres", "rabbitmq"]
    assert all(port.startswith("127.0.0.1:") for port in published)
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"])


def test_postgres_and_rabbitmq_keep_their_data_in_named_volumes() -> None:
    volumes = set(COMPOSE["volumes"])
    for service, path in (("postgres", "/var/lib/postgresql"), ("rabbitmq", "/var/lib/rabbitmq")):
        mounts = [m.split(":") for m in SERVICES[service]["volumes"]]
        assert [path] == [target for source, target in mounts if source in volumes]
    assert SERVICES["rabbitmq"]["hostname"] == "rabbitmq"  # its node name, so its data's


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image_version(SERVICES[name]["image"])


def test_rabbitmq_and_postgres_are_supported_releases() -> None:
    assert image_version(SERVICES["rabbitmq"]["image"]) >= (3, 13, 0)
    assert image_version(SERVICES["postgres"]["image"]) >= (15, 0, 0)


def test_our_image_is_tagged_with_the_package_version() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert SERVICES["client"]["image"] == f"durable-rabbit:{version}"


def test_no_password_or_key_has_a_default() -> None:
    assert required_variables() == {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "DF_MANAGEMENT_KEYS"}
    for match in VARIABLE.finditer(COMPOSE_TEXT):
        if match["how"] == ":?":
            assert match["rest"].strip(), f"{match['name']}: no message says what to set"
        else:
            assert (match["how"], match["rest"]) == (":-", ""), f"{match[0]}: a default value"
    assert "guest" not in COMPOSE_TEXT.replace("`guest`", "")
    assert "DF_AUTH_DISABLED" not in SERVICES["client"]["environment"]


@pytest.mark.parametrize("name", ["orchestrator", "activities", "client", "migrate"])
def test_every_variable_the_services_get_is_a_setting(name: str) -> None:
    known = service_settings(name) if name != "migrate" else any_service_settings()
    assert set(SERVICES[name]["environment"]) - known == set()


@pytest.mark.parametrize("guide", GUIDES, ids=lambda path: path.name)
def test_the_guides_compose_commands_work_as_written(guide: Path) -> None:
    text = guide.read_text()
    commands = [line for line in text.splitlines() if "docker compose" in line]
    assert any("docker compose up --build" in line for line in commands), guide
    for line in commands:
        for file in re.findall(r"-f (\S+)", line):
            assert (ROOT / file.strip("`")).is_file(), f"{guide.name}: {file} does not exist"
    for variable in required_variables():
        assert variable in text, f"{guide.name} does not say to set {variable}"
