"""User code imports the SDK, ``durable``, never the services: no Python example in the README
or the user guide imports from ``services`` (operators' ``python -m services…`` commands in
shell blocks are not user code), and each example's ``durable`` imports exist."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.helpers.guide import PYTHON_BLOCK, guide_pages

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks() -> list[tuple[str, str]]:
    pages = [README, *guide_pages()]
    return [
        (f"{page.name}[{number}]", source)
        for page in pages
        for number, source in enumerate(PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")))
    ]


def _imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement of ``source``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


BLOCKS = _blocks()


def test_the_readme_and_the_guide_have_python_examples() -> None:
    assert len(BLOCKS) > 20
    assert any(name.startswith("README.md") for name, _ in BLOCKS)


@pytest.mark.parametrize(("block", "source"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_no_example_imports_from_the_services(block: str, source: str) -> None:
    services = [module for module, _ in _imports(source) if module.split(".")[0] == "services"]

    assert services == [], f"{block} imports {services}: import from durable instead"


@pytest.mark.parametrize(("block", "source"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_what_an_example_imports_from_durable_exists(block: str, source: str) -> None:
    for module, names in _imports(source):
        if module.split(".")[0] != "durable":
            continue
        imported = importlib.import_module(module)
        missing = [name for name in names if not hasattr(imported, name)]
        assert missing == [], f"{block}: {module} has no {missing}"
