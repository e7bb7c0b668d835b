"""The event store owns its tables: no SQL on them outside ``durable/store``, and the store
imports no service, workflow or deployment code (parsed from the source, not run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "durable" / "store"
CHECKED = ("contracts", "durable", "services", "workflows", "deploy")
TABLES = "instances|events|outbox|timers|registered_functions"
STATEMENT = re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN|TABLE|USING)\s+(?:{TABLES})\b")
"""A statement on one of the event store's tables (keywords in capitals, as our SQL is
written; prose such as "read from events" does not match)."""


def _sources(*tops: str) -> list[Path]:
    return sorted(path for top in tops for path in (ROOT / top).rglob("*.py"))


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal, f-strings' literal parts included."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_sql_on_the_event_tables_outside_the_store() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {STATEMENT.search(text).group(0)!r}"  # type: ignore[union-attr]
        for path in _sources(*CHECKED)
        if STORE not in path.parents
        for line, text in _strings(ast.parse(path.read_text()))
        if STATEMENT.search(text)
    ]
    assert found == [], "SQL on the event tables belongs in durable/store:\n" + "\n".join(found)


def test_the_check_would_see_the_stores_own_statements() -> None:
    statements = [
        text
        for path in _sources("durable/store")
        for _, text in _strings(ast.parse(path.read_text()))
        if STATEMENT.search(text)
    ]
    assert len(statements) > 20


def test_the_store_imports_no_service_workflow_or_deployment() -> None:
    forbidden = ("services", "workflows", "deploy", "bench", "tests")
    found = []
    for path in _sources("durable/store"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.split(".")[0] in forbidden
                or (name.startswith("durable.") and name.split(".")[1] in ("app", "client"))
            ]
    assert found == []
