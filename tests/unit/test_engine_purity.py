"""The engine is pure: no I/O, no clock, no randomness.

Its imports are checked by the import-linter contract "pure-engine" (`.importlinter`,
`tests/unit/test_import_contracts.py`); what the linter cannot see is checked here: calls that
read the clock or draw random ids, and what importing the engine loads at run time.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine as engine_package

CLOCK_AND_RANDOM_CALLS = {"now", "utcnow", "today", "time", "monotonic", "uuid1", "uuid4"}
IO_LIBRARIES = {"asyncio", "aio_pika", "aiormq", "asyncpg", "structlog"}

ENGINE_MODULES = sorted(
    f"{engine_package.__name__}.{info.name}"
    for info in pkgutil.iter_modules(engine_package.__path__)
)
REPOSITORY = Path(engine_package.__file__).parents[1]


def syntax_tree(module_name: str) -> ast.Module:
    module = importlib.import_module(module_name)
    return ast.parse(Path(module.__file__).read_text(encoding="utf-8"))


def test_the_engine_package_has_the_modules_this_test_checks():
    assert {"context", "executor", "actions", "open_calls"} <= {
        name.rpartition(".")[2] for name in ENGINE_MODULES
    }


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


@pytest.mark.parametrize("package", ["engine", "durable"])
def test_importing_the_engine_or_the_sdk_loads_no_io_library(package):
    # A fresh interpreter, because this test process has long since imported asyncio. The
    # engine imports the SDK's task types, so importing it runs durable/__init__.py too.
    probe = (
        f"import sys, {package}\n"
        f"print(' '.join(sorted(set({sorted(IO_LIBRARIES)!r}) & set(sys.modules))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPOSITORY
    )

    assert result.stdout.strip() == ""
