"""The import contracts in `.importlinter` hold, catch a forbidden import, and what a service
loads when it starts follows them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import durable

REPOSITORY = Path(durable.__file__).parents[1]
ROOT_PACKAGES = ("contracts", "durable", "engine", "services", "workflows", "deploy", "bench")
LINT_IMPORTS = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]


def lint_imports(directory: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy's packages, not the installed (editable) ones, are analysed.
    return subprocess.run(
        LINT_IMPORTS,
        capture_output=True,
        text=True,
        cwd=directory,
        env={"PYTHONPATH": str(directory), "PATH": "/usr/bin:/bin"},
    )


def test_the_repository_keeps_every_contract():
    result = lint_imports(REPOSITORY)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("durable/app.py", "import services.orchestrator.service", "The SDK depends on"),
        ("engine/executor.py", "import time", "The engine does no I/O"),
        ("engine/context.py", "import durable.client", "The engine does no I/O"),
        ("services/activities/worker.py", "import services.orchestrator.handler", "each other"),
        ("contracts/messages.py", "import durable.app", "Contracts import nothing"),
        ("workflows/samples.py", "import services.common.loader", "Workflows import"),
        ("durable/tasks.py", "import engine.executor", "Each layer imports only"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, forbidden_import, contract):
    for package in ROOT_PACKAGES:
        shutil.copytree(
            REPOSITORY / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPOSITORY / ".importlinter", tmp_path)
    assert lint_imports(tmp_path).returncode == 0, "the copy breaks a contract before the change"
    source = tmp_path / module
    source.write_text(source.read_text(encoding="utf-8") + f"\n{forbidden_import}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    broken = result.stdout.partition("Broken contracts")[2]
    assert contract in broken, result.stdout


def test_starting_the_activities_service_loads_nothing_of_the_orchestrator():
    # What `python -m services.activities` imports before it connects: its own modules, then
    # the function modules its settings name (the same loader, the same default modules).
    probe = (
        "import sys\n"
        "import services.activities.__main__\n"
        "from services.activities.settings import ActivitiesSettings\n"
        "from services.common.loader import load_function_apps\n"
        "load_function_apps(ActivitiesSettings().modules)\n"
        "print(' '.join(sorted(name for name in sys.modules\n"
        "    if name.split('.')[0] == 'engine' or name.startswith('services.orchestrator'))))\n"
        "print(len([name for name in sys.modules if name.startswith('workflows.')]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPOSITORY
    )
    orchestrator_modules, workflow_modules = result.stdout.splitlines()

    assert orchestrator_modules == ""
    assert int(workflow_modules) >= 3  # the function modules were loaded, so the check saw them
