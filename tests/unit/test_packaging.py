"""What an installed package promises its users: a licence, typed modules, and runtime
dependencies as ranges that admit their own FastAPI or pydantic, while the services and CI
install the exact versions of ``constraints.txt``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from typer.testing import CliRunner

from services.client import cli as client_cli
from services.common.version import package_version
from services.operations import cli as operations_cli

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def runtime_requirements() -> list[Requirement]:
    extras = PROJECT["optional-dependencies"]
    return [Requirement(text) for text in [*PROJECT["dependencies"], *extras["otlp"]]]


def test_runtime_dependencies_are_ranges_with_both_bounds() -> None:
    for requirement in runtime_requirements():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators == {">=", "<"}, f"{requirement} is not a compatible range"


def test_constraints_pin_every_runtime_dependency_inside_its_range() -> None:
    pins = pinned()
    for requirement in runtime_requirements():
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"constraints.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(version), f"{requirement.name}=={version}"


def test_the_package_has_a_licence_and_is_typed() -> None:
    assert PROJECT["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "durable" / "py.typed").exists()
    assert (ROOT / "contracts" / "py.typed").exists()


def test_the_version_is_the_projects() -> None:
    assert package_version() == PROJECT["version"]


def test_both_clis_print_the_version() -> None:
    for app in (client_cli.app, operations_cli.app):
        result = CliRunner().invoke(app, ["--version"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"durable-rabbit {PROJECT['version']}"
