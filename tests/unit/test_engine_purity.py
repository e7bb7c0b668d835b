"""The engine is pure: no I/O, no clock, no randomness, checked from its source."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import services.orchestrator.engine as engine_package

FORBIDDEN_MODULES = {
    "aio_pika",
    "aiormq",
    "asyncio",
    "asyncpg",
    "os",
    "random",
    "secrets",
    "socket",
    "structlog",
    "subprocess",
    "threading",
    "time",
}
CLOCK_AND_RANDOM_CALLS = {"now", "utcnow", "today", "time", "monotonic", "uuid1", "uuid4"}
PROJECT_PACKAGES_ALLOWED = ("contracts", "services.orchestrator.engine")

ENGINE_MODULES = sorted(
    f"{engine_package.__name__}.{info.name}"
    for info in pkgutil.iter_modules(engine_package.__path__)
)


def syntax_tree(module_name: str) -> ast.Module:
    module = importlib.import_module(module_name)
    return ast.parse(Path(module.__file__).read_text(encoding="utf-8"))


def imported_modules(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_engine_package_has_the_modules_this_test_checks():
    assert {"context", "executor", "tasks", "actions", "errors"} <= {
        name.rpartition(".")[2] for name in ENGINE_MODULES
    }


@pytest.mark.parametrize("module_name", ENGINE_MODULES)
def test_engine_module_imports_no_io_clock_or_randomness(module_name):
    imports = imported_modules(syntax_tree(module_name))

    forbidden = {name for name in imports if name.split(".")[0] in FORBIDDEN_MODULES}
    assert not forbidden, f"{module_name} imports {sorted(forbidden)}"


@pytest.mark.parametrize("module_name", ENGINE_MODULES)
def test_engine_module_imports_only_contracts_from_the_project(module_name):
    imports = imported_modules(syntax_tree(module_name))

    project = {name for name in imports if name.split(".")[0] in {"services", "durable"}}
    outside = {name for name in project if not name.startswith(PROJECT_PACKAGES_ALLOWED)}
    assert not outside, f"{module_name} imports {sorted(outside)}"


@pytest.mark.parametrize("module_name", ENGINE_MODULES)
def test_engine_module_reads_no_clock_and_draws_no_random_ids(module_name):
    # Walking the syntax tree skips comments and docstrings, which may mention these names.
    calls = {
        ast.unparse(node.func)
        for node in ast.walk(syntax_tree(module_name))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_AND_RANDOM_CALLS)
            or (isinstance(node.func, ast.Name) and node.func.id in CLOCK_AND_RANDOM_CALLS)
        )
    }
    assert not calls, f"{module_name} calls {sorted(calls)}"


def test_importing_the_engine_loads_no_io_library():
    # A fresh interpreter, because this test process has long since imported asyncio.
    probe = (
        "import sys, services.orchestrator.engine\n"
        "print(' '.join(sorted({'asyncio','aio_pika','aiormq','asyncpg','structlog'}"
        " & set(sys.modules))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(engine_package.__file__).parents[3],
    )

    assert result.stdout.strip() == ""
